"""Message lifecycle end to end: the local runner's sweep, stream-fed stats and
dead-letter queue, driven over real HTTP by python-zaqarclient."""
import time
import uuid

import pytest
from zaqarclient.queues import client
from zaqarclient.queues.v2 import core

from conftest import CLIENT_ID


@pytest.fixture
def zaqar(runner_url):
    return client.Client(runner_url, version=2, conf={
        "client_uuid": CLIENT_ID,
        "auth_opts": {"backend": "noauth",
                      "options": {"os_project_id": f"e2e-life-{uuid.uuid4()}"}}})


def eventually(check, timeout=30):
    """Poll until check() is truthy: the stream and the sweep run on their own."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def test_an_expired_message_leaves_the_stats_after_a_sweep(zaqar, local_runner):
    queue = zaqar.queue("expiring", force_create=True)
    queue.post([{"body": "short-lived", "ttl": 60}, {"body": "kept", "ttl": 3600}])
    assert eventually(lambda: queue.stats["messages"]["total"] == 2)
    local_runner.advance(61)
    assert eventually(lambda: queue.stats["messages"]["total"] == 1)
    assert [m.body for m in queue.messages(echo=True)] == ["kept"]


def test_a_poison_message_reaches_the_dead_letter_queue(zaqar):
    dead = zaqar.queue("poison-dead", force_create=True)
    # Created with its metadata: the client's metadata(new_meta=...) adds the
    # reserved keys and then removes them again, since a queue GET shows them
    # as null (against Zaqar as well).
    request, transport = zaqar._request_and_transport()
    core.queue_create(transport, request, "poison", metadata={
        "_max_claim_count": 2, "_dead_letter_queue": dead.name})
    queue = zaqar.queue("poison", auto_create=False)
    queue.post({"body": {"job": 7}})
    for _ in range(2):
        claim = queue.claim(ttl=60, grace=60)
        assert [m.body for m in claim] == [{"job": 7}]
        claim.delete()  # the worker gives up; the message is free again
    assert list(queue.claim(ttl=60, grace=60)) == []
    assert [m.body for m in dead.messages(echo=True)] == [{"job": 7}]
    assert list(queue.messages(echo=True)) == []

"""Stats count a caller's own writes at once, as python-zaqarclient's
test_queue_stats_functional expects: over real HTTP and the websocket of the
local runner, with no waiting for the stream (only deletions wait for it)."""
import json
import time
import uuid

import pytest
from zaqarclient import transport
from zaqarclient.transport.request import Request

from e2e.clients import noauth_client


@pytest.fixture
def project():
    return f"e2e-stats-{uuid.uuid4()}"


@pytest.fixture
def zaqar(runner_url, project):
    return noauth_client(runner_url, project)


@pytest.fixture
def zaqar_ws(runner_ws_url, project):
    conf = {"auth_opts": {"backend": "noauth",
                          "options": {"os_project_id": project, "os_auth_token": ""}}}
    ws = transport.get_transport_for(runner_ws_url, version=2, options=conf)
    yield lambda action, **body: ws.send(
        Request(runner_ws_url, action, content=json.dumps(body))).deserialized_content
    ws.cleanup()


def test_stats_over_http_count_posts_and_claims_at_once(zaqar):
    queue = zaqar.queue("stats", force_create=True)
    queue.post([{"body": n, "ttl": 600} for n in range(3)])
    stats = queue.stats["messages"]
    assert (stats["free"], stats["claimed"], stats["total"]) == (3, 0, 3)
    assert stats["oldest"]["id"] != stats["newest"]["id"]
    claimed = queue.claim(ttl=120, grace=60, limit=2)
    stats = queue.stats["messages"]
    assert (stats["free"], stats["claimed"], stats["total"]) == (1, 2, 3)
    claimed.delete()  # a release: free again at once
    assert queue.stats["messages"]["free"] == 3
    for message in queue.claim(ttl=120, grace=60, limit=3):
        message.delete()
    deadline = time.monotonic() + 30  # deletions wait for the stream handler
    while queue.stats["messages"]["total"] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert queue.stats["messages"] == {"claimed": 0, "delayed": 0, "free": 0, "total": 0}


def test_stats_over_the_websocket_count_posts_and_claims_at_once(zaqar_ws):
    zaqar_ws("queue_create", queue_name="stats")
    ids = zaqar_ws("message_post", queue_name="stats",
                   messages=[{"body": n} for n in range(3)])["message_ids"]
    stats = zaqar_ws("queue_get_stats", queue_name="stats")["messages"]
    assert (stats["free"], stats["claimed"], stats["total"]) == (3, 0, 3)
    assert (stats["oldest"]["id"], stats["newest"]["id"]) == (ids[0], ids[-1])
    zaqar_ws("claim_create", queue_name="stats", limit=2)
    stats = zaqar_ws("queue_get_stats", queue_name="stats")["messages"]
    assert (stats["free"], stats["claimed"], stats["total"]) == (1, 2, 3)

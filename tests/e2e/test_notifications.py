"""Notifications end to end: the local runner (HTTP API, the messages
table's stream polled into the stream function, the retry worker on its
schedule) delivering to a real HTTP receiver on 127.0.0.1, with
python-zaqarclient, unchanged, as the producer and subscriber."""
import time
import uuid

import pytest
import requests

from conftest import CLIENT_ID
from e2e.clients import noauth_client
from e2e.conftest import launch

DELIVERY_LIMIT_S = 2.0


@pytest.fixture(scope="module")
def confirming_url():
    """A runner that requires confirmation, its retry worker firing twice a
    second (as it would keep running on Lambda while retries are due)."""
    with launch("--schedule-interval", "0.5",
                environment={"REQUIRE_CONFIRMATION": "true"}) as runner:
        yield runner.url


@pytest.fixture
def project():
    return f"e2e-{uuid.uuid4()}"




def wait_for(receiver, count, timeout):
    deadline = time.monotonic() + timeout
    while len(receiver.received) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return receiver.bodies()


def test_a_posted_message_reaches_the_webhook_within_2_s(runner_url, project, receiver):
    cli = noauth_client(runner_url, project)
    subscription = cli.subscription("orders", subscriber=f"{receiver.url}/orders", ttl=600)
    assert subscription.id and subscription.confirmed is False
    queue = cli.queue("orders")
    posted = time.time()
    queue.post({"body": {"order": 7}, "ttl": 300})
    [payload] = wait_for(receiver, 1, DELIVERY_LIMIT_S)
    assert receiver.received[0]["at"] - posted * 1000 < DELIVERY_LIMIT_S * 1000
    assert payload == {"ttl": 300, "body": {"order": 7}, "Message_Type": "Notification",
                       "queue_name": "orders"}


def test_two_server_errors_then_success(runner_url, project, receiver):
    receiver.answers = [500, 500, 200]
    cli = noauth_client(runner_url, project)
    cli.subscription("flaky", subscriber=receiver.url, ttl=600)
    cli.queue("flaky").post({"body": "third time lucky"})
    # The default policy retries three times at once.
    bodies = wait_for(receiver, 3, DELIVERY_LIMIT_S)
    assert [body["body"] for body in bodies] == ["third time lucky"] * 3
    time.sleep(0.5)
    assert len(receiver.received) == 3


def test_confirmation_comes_first_and_gates_delivery(confirming_url, project, receiver):
    cli = noauth_client(confirming_url, project)
    cli.subscription("gated", subscriber=receiver.url, ttl=600)
    [request] = wait_for(receiver, 1, DELIVERY_LIMIT_S)
    assert request["Message_Type"] == "SubscriptionConfirmation"
    cli.queue("gated").post({"body": "before"})
    time.sleep(DELIVERY_LIMIT_S)
    assert len(receiver.received) == 1  # nothing until confirmed
    confirmed = requests.put(
        confirming_url + request["URL-Paths"], json=request["SubscribeBody"], timeout=5,
        headers={"Client-ID": str(uuid.uuid4()), "X-Project-ID": request["X-Project-ID"],
                 "URL-Signature": request["URL-Signature"],
                 "URL-Methods": request["URL-Methods"], "URL-Paths": request["URL-Paths"],
                 "URL-Expires": request["URL-Expires"]})
    assert confirmed.status_code == 204
    cli.queue("gated").post({"body": "after"})
    bodies = wait_for(receiver, 2, DELIVERY_LIMIT_S)
    assert [body.get("body") for body in bodies] == [None, "after"]


def test_later_retries_keep_the_policy_schedule(confirming_url, project, receiver):
    cli = noauth_client(confirming_url, project)
    policy = {"retries_with_no_delay": 0, "minimum_delay_retries": 1, "minimum_delay": 2,
              "maximum_delay": 12, "maximum_delay_retries": 0}
    subscription = cli.subscription("patient", subscriber=receiver.url, ttl=600,
                                    options={"_retry_policy": policy})
    wait_for(receiver, 1, DELIVERY_LIMIT_S)
    requests.put(f"{confirming_url}/v2/queues/patient/subscriptions/{subscription.id}/confirm",
                 json={"confirmed": True}, timeout=5,
                 headers={"Client-ID": CLIENT_ID, "X-Project-ID": project}).raise_for_status()
    receiver.answers = [500, 500, 200]
    cli.queue("patient").post({"body": "in time"})
    wait_for(receiver, 4, 15)
    attempts = [request["at"] / 1000 for request in receiver.received[1:]]
    assert len(attempts) == 3
    # 2 s (minimum_delay), then 2 s (the first point of the backoff), each
    # kept to within the local schedule's half second and a poll.
    gaps = [later - earlier for earlier, later in zip(attempts, attempts[1:])]
    assert all(2.0 <= gap < 3.6 for gap in gaps), gaps

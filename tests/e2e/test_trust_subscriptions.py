"""Trust subscriptions end to end (`trust+http://`, auth-notes §4.3): a real
Keystone, the runner in keystone mode with the service user `zaqar` as its
trustee, and webhooks on 127.0.0.1 (the dev stage lets them reach loopback).

Subscribing creates a trust from the caller to the trustee; each delivery
carries a token scoped to it, with which the subscriber acts as the caller:
as tempest's test_trust_subscription does, by posting to the service itself.
"""
import datetime
import json
import time
import uuid

import pytest
import websocket

from chalicelib.actions.subscriptions import NOT_CALLERS
from conftest import CLIENT_ID
from local import keystone as local_keystone
from tests.e2e.conftest import launch
from tests.e2e.test_keystone_auth import ALPHA, ask

SERVICE = local_keystone.SERVICE_USER
TRUSTEE = {"KEYSTONE_TRUSTEE_USER": SERVICE.name, "KEYSTONE_TRUSTEE_PASSWORD": SERVICE.password}
DELIVERY_S = 15  # a busy 2-core machine; deliveries usually take well under a second
NO_TRUSTEE = ("The subscriber type trust+http needs Keystone trusts, which this service "
              "does not have: no trustee (the service's Keystone user) is configured; use "
              "http instead.")


@pytest.fixture(scope="module")
def runner(keystone):
    with launch("--auth", "keystone", "--keystone-url", keystone.url,
                "--schedule-interval", "2", environment=TRUSTEE) as started:
        yield started


@pytest.fixture(scope="module")
def alpha(keystone):
    """alpha-member's project-scoped token and its document."""
    return local_keystone.issue_token(keystone.url, ALPHA.name, ALPHA.password, ALPHA.project)


def wait_for(receiver, count):
    deadline = time.monotonic() + DELIVERY_S
    while len(receiver.requests()) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return receiver.requests()


def subscribe(runner, token, queue, body):
    answer = ask(runner, "POST", f"/v2/queues/{queue}/subscriptions", token, body)
    assert answer.status_code == 201, answer.text
    subscription_id = answer.json()["subscription_id"]
    found = ask(runner, "GET", f"/v2/queues/{queue}/subscriptions/{subscription_id}", token)
    return found.json()


def test_a_delivery_carries_a_token_of_the_subscribers_trust(runner, keystone, alpha, receiver):
    token, document = alpha
    queue = f"trusted-{uuid.uuid4().hex[:8]}"
    before = datetime.datetime.now(datetime.timezone.utc)
    subscription = subscribe(runner, token, queue,
                             {"subscriber": f"trust+{receiver.url}/hook", "ttl": 600})
    assert subscription["subscriber"] == f"trust+{receiver.url}/hook"
    trust_id = subscription["options"]["trust_id"]

    # The trust, as Keystone has it: alpha's roles on alpha, for the trustee,
    # impersonating, until the subscription expires.
    status, _, found = local_keystone.call("GET", f"{keystone.url}/OS-TRUST/trusts/{trust_id}",
                                           token)
    assert status == 200, found
    trust = found["trust"]
    service_token, service = local_keystone.issue_token(
        keystone.url, SERVICE.name, SERVICE.password, SERVICE.project)
    caller = document["token"]
    assert (trust["trustor_user_id"], trust["trustee_user_id"], trust["project_id"]) == (
        caller["user"]["id"], service["token"]["user"]["id"], caller["project"]["id"])
    assert trust["impersonation"] is True
    assert {role["name"] for role in trust["roles"]} == {role["name"] for role in caller["roles"]}
    expires = datetime.datetime.fromisoformat(trust["expires_at"].replace("Z", "+00:00"))
    assert abs((expires - before).total_seconds() - 600) < 60

    posted = ask(runner, "POST", f"/v2/queues/{queue}/messages", token,
                 {"messages": [{"body": {"event": "trusted"}, "ttl": 300}]})
    assert posted.status_code == 201
    [request] = wait_for(receiver, 1)
    assert request["path"] == "/hook"  # trust+ dropped
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["json"]["body"] == {"event": "trusted"}
    assert request["json"]["queue_name"] == queue

    # The token validates (as the service user may validate any) and is
    # scoped to the trust, acting as alpha in alpha's project.
    delivered = request["headers"]["X-Auth-Token"]
    status, validated = local_keystone.validate_token(keystone.url, service_token, delivered)
    assert status == 200, validated
    scoped = validated["token"]
    assert scoped["OS-TRUST:trust"]["id"] == trust_id
    assert scoped["OS-TRUST:trust"]["impersonation"] is True
    assert scoped["user"]["id"] == caller["user"]["id"]
    assert scoped["project"]["id"] == caller["project"]["id"]


def test_the_subscriber_acts_as_the_caller_as_in_tempest(runner, alpha):
    """tempest's test_trust_subscription: the subscriber is the service's own
    messages endpoint, so each notification is posted, with the trust's
    token, as a message to another queue of the caller's."""
    token, document = alpha
    queue, target = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("source", "sink"))
    subscription = subscribe(runner, token, queue, {
        "subscriber": f"trust+{runner.url}/v2/queues/{target}/messages", "ttl": 1200,
        "options": {"post_data": json.dumps({"messages": [{"body": "$zaqar_message$",
                                                           "ttl": 60}]}),
                    "post_headers": {"Client-ID": str(uuid.uuid4()),
                                     "X-Project-ID": document["token"]["project"]["id"]}}})
    ask(runner, "POST", f"/v2/queues/{queue}/messages", token,
        {"messages": [{"body": {"n": 1}, "ttl": 300}]})
    deadline = time.monotonic() + DELIVERY_S
    while True:
        listed = ask(runner, "GET", f"/v2/queues/{target}/messages?echo=true", token)
        messages = listed.json().get("messages") if listed.status_code == 200 else None
        if messages or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    path = f"/v2/queues/{queue}/subscriptions/{subscription['id']}"
    assert messages, ask(runner, "GET", path, token).json()["last_error"]
    [message] = messages
    assert message["body"] == {"body": {"n": 1}, "ttl": 300, "Message_Type": "Notification",
                               "queue_name": queue}


def test_over_the_websocket_the_frame_carries_the_token(runner, alpha, receiver):
    token, document = alpha
    queue = f"ws-trusted-{uuid.uuid4().hex[:8]}"
    who = {"Client-ID": CLIENT_ID, "X-Project-ID": document["token"]["project"]["id"]}
    connection = websocket.create_connection(runner.ws_url, timeout=30)
    try:
        def frame(action, body, **headers):
            connection.send(json.dumps({"action": action, "body": body,
                                        "headers": {**who, **headers}}))
            return json.loads(connection.recv())

        assert frame("authenticate", {}, **{"X-Auth-Token": token})["headers"]["status"] == 200
        body = {"queue_name": queue, "subscriber": f"trust+{receiver.url}/ws", "ttl": 600}
        without = frame("subscription_create", body)
        assert without["headers"]["status"] == 400
        assert "X-Auth-Token" in without["body"]["exception"]
        created = frame("subscription_create", body, **{"X-Auth-Token": token})
        assert created["headers"]["status"] == 201, created
        found = frame("subscription_get", {"queue_name": queue, "subscription_id":
                                           created["body"]["subscription_id"]})
        assert found["body"]["options"]["trust_id"]
    finally:
        connection.close()


def test_without_a_trustee_trust_subscribers_are_refused(keystone, alpha):
    token, _ = alpha
    with launch("--auth", "keystone", "--keystone-url", keystone.url) as untrusting:
        answer = ask(untrusting, "POST", "/v2/queues/untrusted/subscriptions", token,
                     {"subscriber": "trust+http://127.0.0.1:9/hook"})
    assert answer.status_code == 400
    assert answer.json() == {"title": "Invalid API request", "description": NO_TRUSTEE}


def test_another_members_trust_id_is_refused(runner, keystone, alpha):
    """options are readable by the whole project: alpha-reader naming the
    trust of alpha-member's subscription, to have it deliver tokens acting
    as alpha-member to the reader's own URL, is refused."""
    token, _ = alpha
    queue = f"borrowed-{uuid.uuid4().hex[:8]}"
    subscription = subscribe(runner, token, queue,
                             {"subscriber": "trust+http://127.0.0.1:9/alpha", "ttl": 600})
    reader = local_keystone.USERS["alpha-reader"]
    reader_token, _ = local_keystone.issue_token(keystone.url, reader.name, reader.password,
                                                 reader.project)
    answer = ask(runner, "POST", f"/v2/queues/{queue}/subscriptions", reader_token, {
        "subscriber": "trust+http://127.0.0.1:9/reader",
        "options": {"trust_id": subscription["options"]["trust_id"]}})
    assert answer.status_code == 403, answer.text
    assert answer.json() == {"title": "Not authorized", "description": NOT_CALLERS}

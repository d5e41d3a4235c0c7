"""A topic end to end, against the local runner over real HTTP and
WebSocket: one post reaches a webhook, a subscribed websocket connection and
two queues, whose copies are claimed each on its own; the topic's routes
refuse claims."""
import json
import time
import uuid

import requests
import websocket

from conftest import CLIENT_ID, headers

DEADLINE_S = 10


def test_one_post_reaches_a_webhook_a_websocket_and_two_queues(runner_url, runner_ws_url,
                                                               receiver):
    project = f"e2e-topic-{uuid.uuid4()}"
    who = headers(project=project, client_id=CLIENT_ID)

    def call(method, path, body=None):
        return requests.request(method, runner_url + path, headers=who, timeout=30,
                                data=None if body is None else json.dumps(body))

    topic = "/v2/topics/orders"
    assert call("PUT", topic).status_code == 201
    for subscriber in (f"{receiver.url}/orders", "queue:billing", "queue:shipping"):
        assert call("POST", f"{topic}/subscriptions", {"subscriber": subscriber}
                    ).status_code == 201, subscriber
    connection = websocket.create_connection(runner_ws_url, timeout=DEADLINE_S)
    try:
        connection.send(json.dumps({"action": "subscription_create", "headers": who,
                                    "body": {"queue_name": "orders", "topic": True,
                                             "ttl": 300}}))
        assert json.loads(connection.recv())["headers"]["status"] == 201

        posted = call("POST", f"{topic}/messages",
                      {"messages": [{"body": {"order": 7}, "ttl": 300}]})
        assert posted.status_code == 201
        assert posted.json()["resources"][0].startswith(f"{topic}/messages/")
        expected = {"body": {"order": 7}, "ttl": 300, "queue_name": "orders",
                    "Message_Type": "Notification"}
        assert json.loads(connection.recv()) == expected
    finally:
        connection.close()
    deadline = time.monotonic() + DEADLINE_S
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert receiver.bodies() == [expected]

    claimed = []
    for queue in ("billing", "shipping"):  # the billing claim holds while shipping claims
        found = None
        while time.monotonic() < deadline + DEADLINE_S:
            found = call("POST", f"/v2/queues/{queue}/claims", {"ttl": 60})
            if found.status_code == 201:
                break
            time.sleep(0.1)
        assert found.status_code == 201, queue
        [message] = found.json()["messages"]
        assert message["body"] == {"order": 7}
        claimed.append(message["href"])
    for href in claimed:
        assert call("DELETE", href).status_code == 204

    refused = call("POST", f"{topic}/claims", {"ttl": 60})
    assert (refused.status_code, refused.json()) == (404, {"title": "404 Not Found"})
    listed = call("GET", f"{topic}/messages?echo=true").json()["messages"]
    assert [m["body"] for m in listed] == [{"order": 7}]

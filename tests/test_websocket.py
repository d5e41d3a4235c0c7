"""The websocket API (contract §10) through the app's websocket handlers:
API Gateway's events built by hand, on moto, and what the app posts back
through `app.websocket_api.send` captured."""
import base64
import json
import uuid

import boto3
import msgpack
import pytest
from chalice.app import WebsocketDisconnectedError
from pynamodb.exceptions import DoesNotExist

import app as app_module
from chalicelib import clock
from chalicelib.storage import connections
from chalicelib.storage.models import ConnectionRecord, MessageRecord
from chalicelib.websocket import push
from chalicelib.websocket.dispatch import ACTIONS
from chalicelib.websocket.frames import MAX_MESSAGE_BYTES
from conftest import CLIENT_ID, PROJECT, headers
from local.triggers import lambda_record

DOMAIN = "abc123.execute-api.us-east-1.amazonaws.com"
OTHER_CLIENT = "9d6fb6b4-2a0a-4a83-9b6e-0d1fd54c7e10"


class Gateway:
    """API Gateway's side: it invokes the handlers, and keeps what the app
    posts to each connection. Connections in `gone` answer 410."""

    def __init__(self):
        self.sent = {}
        self.gone = set()

    def send(self, connection_id, data):
        if connection_id in self.gone:
            raise WebsocketDisconnectedError(connection_id)
        self.sent.setdefault(connection_id, []).append(data)

    def connect(self):
        connection = Connection(self, f"conn-{uuid.uuid4().hex[:12]}=")
        app_module.websocket_connect(connection.event("$connect"), None)
        return connection


class Connection:
    def __init__(self, gateway, connection_id):
        self.gateway = gateway
        self.id = connection_id

    def event(self, route_key, body=None, binary=False):
        return {"requestContext": {"routeKey": route_key, "connectionId": self.id,
                                   "domainName": DOMAIN, "stage": "dev",
                                   "apiId": "abc123"},
                "body": base64.b64encode(body).decode() if binary else body,
                "isBase64Encoded": binary}

    def send_raw(self, data):
        """Send one frame (str: text, bytes: binary); the answer, decoded."""
        binary = isinstance(data, bytes)
        app_module.websocket_message(self.event("$default", data, binary), None)
        answer = self.gateway.sent[self.id][-1]
        assert isinstance(answer, bytes) == binary  # answered in the same encoding
        return msgpack.unpackb(answer) if binary else json.loads(answer)

    def ask(self, action, body=None, binary=False, **header_fields):
        frame = {"action": action, "headers": headers(**header_fields)}
        if body is not None:
            frame["body"] = body
        return self.send_raw(msgpack.packb(frame) if binary else json.dumps(frame))

    def pushed(self):
        return self.gateway.sent.get(self.id, [])

    def close(self):
        app_module.websocket_disconnect(self.event("$disconnect"), None)


def status(answer):
    return answer["headers"]["status"]


@pytest.fixture
def gateway(app, monkeypatch):
    fake = Gateway()
    monkeypatch.setattr(app.websocket_api, "send", fake.send)
    return fake


@pytest.fixture
def ws(gateway):
    return gateway.connect()


def post(ws, queue, *bodies):
    answer = ws.ask("message_post", {"queue_name": queue,
                                     "messages": [{"body": body} for body in bodies]})
    assert status(answer) == 201, answer
    return answer["body"]["message_ids"]


# -- frames -----------------------------------------------------------------

def test_an_answer_names_the_request_and_its_status(ws):
    answer = ws.ask("queue_create", {"queue_name": "q1"})
    assert answer == {
        "request": {"action": "queue_create", "body": {"queue_name": "q1"},
                    "headers": headers(), "api": "v2"},
        "body": "Queue q1 created.", "headers": {"status": 201}}
    assert status(ws.ask("queue_create", {"queue_name": "q1"})) == 204


def test_a_binary_frame_is_msgpack_and_is_answered_in_msgpack(ws):
    answer = ws.ask("message_post", {"queue_name": "q1", "messages": [{"body": [1, "two"]}]},
                    binary=True)
    assert status(answer) == 201
    listed = ws.ask("message_list", {"queue_name": "q1", "echo": True})
    assert [message["body"] for message in listed["body"]["messages"]] == [[1, "two"]]


BAD_FRAMES = [
    ("not json {", "Can't decode text (JSON) request. JSONDecodeError: "),
    (b"\xc1", "Can't decode binary (MessagePack) request. "),
    ("[1, 2]", "Unexpected body type. Expected dict or dict like."),
    ('"queue_list"', "Unexpected body type. Expected dict or dict like."),
    (json.dumps({"action": "dance", "headers": headers()}), "dance is not a valid action"),
    (json.dumps({"action": ["queue_list"], "headers": headers()}),
     "['queue_list'] is not a valid action"),
    (json.dumps({"action": "queue_list"}), "Schema validation failed."),
    (json.dumps({"action": "queue_list", "headers": {"X-Project-ID": PROJECT}}),
     "Schema validation failed."),
    (json.dumps({"action": "queue_list", "headers": {"Client-ID": CLIENT_ID}}),
     "Schema validation failed."),
    (json.dumps({"action": "queue_get", "headers": headers()}), "Schema validation failed."),
    (json.dumps({"action": "queue_get", "headers": headers(), "body": {"queue_name": 7}}),
     "Schema validation failed."),
    (json.dumps({"action": "message_list", "headers": headers(),
                 "body": {"queue_name": "q1", "limit": "5"}}), "Schema validation failed."),
    (json.dumps({"action": "ping", "headers": dict(headers(), **{"client-id": 1.5})}),
     "Schema validation failed."),
    (json.dumps({"action": "ping", "headers": dict(headers(), **{"x-roles": 5})}),
     "Schema validation failed."),
]


@pytest.mark.parametrize("frame, error", BAD_FRAMES)
def test_a_bad_frame_gets_an_error_and_the_connection_stays_usable(ws, frame, error):
    answer = ws.send_raw(frame)
    assert status(answer) == 400
    assert answer["body"]["error"].startswith(error)
    assert status(ws.ask("queue_create", {"queue_name": "still-here"})) == 201


def test_a_frame_over_128_kb_is_refused_and_the_connection_stays_usable(ws):
    big = "x" * MAX_MESSAGE_BYTES
    answer = ws.ask("message_post", {"queue_name": "q1", "messages": [{"body": big}]})
    assert status(answer) == 400
    assert answer["body"]["error"].startswith("Request too large: ")
    assert status(ws.ask("queue_list")) == 200


def test_an_answer_too_large_for_api_gateway_drops_the_echo_then_says_so(ws):
    frame = {"action": "message_post", "headers": headers(),
             "body": {"queue_name": "big", "messages": [{"body": ""}]}}
    room = MAX_MESSAGE_BYTES - len(json.dumps(frame)) - 10
    frame["body"]["messages"][0]["body"] = "x" * room
    answer = ws.send_raw(json.dumps(frame))
    assert status(answer) == 201
    assert answer["request"]["body"] == {}  # the echo would have overflowed

    post(ws, "q1", "x" * 70_000)
    post(ws, "q1", "y" * 70_000)
    answer = ws.ask("message_list", {"queue_name": "q1", "echo": True})
    assert status(answer) == 400
    assert answer["body"]["error"] == "Answer too large"
    assert status(ws.ask("message_list", {"queue_name": "q1", "echo": True, "limit": 1})) == 200


def strict_json(text):
    """Parse as strict JSON: NaN and Infinity are not JSON."""
    def refuse(name):
        raise ValueError(f"{name} in an answer")
    return json.loads(text, parse_constant=refuse)


def nested(levels):
    value = "bottom"
    for _ in range(levels):
        value = [value]
    return value


# -- what JSON cannot answer: refused as REST refuses it -------------------

def ws_frame(action, body):
    return {"action": action, "headers": headers(), "body": body}


@pytest.mark.parametrize("text", [
    '{"action": "queue_create", "headers": HEADERS, '
    '"body": {"queue_name": "meta1", "metadata": {"x": 1e400}}}',
    '{"action": "queue_create", "headers": HEADERS, '
    '"body": {"queue_name": "meta1", "metadata": {"x": NaN}}}',
    '{"action": "queue_create", "headers": HEADERS, '
    '"body": {"queue_name": "meta1", "metadata": {"x": -Infinity}}}',
    '{"action": "queue_create", "headers": HEADERS, '
    '"body": {"queue_name": "meta1", "metadata": {"x": ' + '[' * 975 + ']' * 975 + '}}}',
])
def test_a_websocket_frame_with_what_json_cannot_answer_is_refused(client, ws, text):
    answer = ws.send_raw(text.replace("HEADERS", json.dumps(headers())))
    assert status(answer) == 400
    assert answer["body"]["error"].startswith("Can't decode text (JSON) request. ")
    listed = client.http.get("/v2/queues?detailed=true", headers=headers())
    assert [queue["name"] for queue in strict_json(listed.body)["queues"]] == []


def test_a_websocket_message_body_of_infinity_is_not_stored(client, ws):
    text = json.dumps(ws_frame("message_post", {
        "queue_name": "q1", "messages": [{"body": "INF"}]})).replace('"INF"', "1e400")
    assert status(ws.send_raw(text)) == 400
    listed = client.http.get("/v2/queues/q1/messages?echo=true", headers=headers())
    assert strict_json(listed.body) == {"messages": [], "links": []}


@pytest.mark.parametrize("value", [b"raw bytes", msgpack.ExtType(5, b"\x00"),
                                   {1: "integer key"}, float("nan"), nested(150)],
                         ids=["bin", "ext", "int-key", "nan", "deep"])
def test_a_msgpack_frame_with_values_json_has_not_is_refused(client, ws, value):
    frame = ws_frame("message_post", {"queue_name": "q1", "messages": [{"body": value}]})
    answer = ws.send_raw(msgpack.packb(frame))
    assert status(answer) == 400
    assert answer["body"]["error"].startswith("Can't decode binary (MessagePack) request. ")
    listed = client.http.get("/v2/queues/q1/messages?echo=true", headers=headers())
    assert strict_json(listed.body) == {"messages": [], "links": []}
    assert status(ws.ask("queue_list")) == 200


def test_a_malformed_client_id_is_answered_like_rest(ws):
    answer = ws.ask("queue_list", client_id="not-a-uuid")
    assert status(answer) == 400
    assert answer["body"] == {"exception": "Malformed hexadecimal UUID.",
                              "error": "Wrong UUID value"}


def test_a_frame_for_another_project_is_refused(gateway, ws):
    assert status(ws.ask("queue_create", {"queue_name": "mine"})) == 201
    answer = ws.ask("queue_list", project="someone-else")
    assert status(answer) == 403
    assert answer["body"] == {"error": "Not authenticated."}
    # Still refused by a Lambda that never saw this connection.
    connections._bound.clear()
    assert status(ws.ask("queue_list", project="someone-else")) == 403
    assert ws.ask("queue_list")["body"] == {"queues": [{"name": "mine"}]}
    # Another connection may use the other project.
    assert status(gateway.connect().ask("queue_list", project="someone-else")) == 200


# -- actions ----------------------------------------------------------------

EXAMPLE_BODIES = {
    "authenticate": None,
    "ping": None,
    "ping_node": None,
    "check_node_health": None,
    "get_home_doc": None,
    "queue_list": {},
    "queue_create": {"queue_name": "q1"},
    "queue_get": {"queue_name": "q1"},
    "queue_delete": {"queue_name": "q1"},
    "queue_get_stats": {"queue_name": "q1"},
    "queue_purge": {"queue_name": "q1"},
    "message_post": {"queue_name": "q1", "messages": [{"body": 1}]},
    "message_list": {"queue_name": "q1"},
    "message_get": {"queue_name": "q1", "message_id": "0000000000000001"},
    "message_get_many": {"queue_name": "q1", "message_ids": ["0000000000000001"]},
    "message_delete": {"queue_name": "q1", "message_id": "0000000000000001"},
    "message_delete_many": {"queue_name": "q1", "pop": 1},
    "claim_create": {"queue_name": "q1"},
    "claim_get": {"queue_name": "q1", "claim_id": "nope"},
    "claim_update": {"queue_name": "q1", "claim_id": "nope"},
    "claim_delete": {"queue_name": "q1", "claim_id": "nope"},
    "subscription_create": {"queue_name": "q1"},
    "subscription_get": {"queue_name": "q1", "subscription_id": "nope"},
    "subscription_list": {"queue_name": "q1"},
    "subscription_delete": {"queue_name": "q1", "subscription_id": "nope"},
    **{f"pool_{verb}": {"pool_name": "p1"} for verb in ("create", "get", "update", "delete")},
    **{f"flavor_{verb}": {"flavor_name": "f1"}
       for verb in ("create", "get", "update", "delete")},
    "pool_list": {}, "flavor_list": {},
}


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_every_action_answers(ws, action):
    answer = ws.ask(action, EXAMPLE_BODIES[action], X_Roles="admin")
    assert answer["request"]["action"] == action
    assert status(answer) in (200, 201, 204, 404)


def test_node_actions(ws):
    assert ws.ask("authenticate")["body"] == {"message": "Authentified."}
    assert status(ws.ask("ping")) == 204
    assert status(ws.ask("ping_node")) == 204
    home = ws.ask("get_home_doc")
    assert status(home) == 200
    assert {"rel/queues", "rel/messages", "rel/health"} <= set(home["body"]["resources"])
    refused = ws.ask("check_node_health")
    assert status(refused) == 403
    assert refused["body"]["error"] == "Not authorized"
    health = ws.ask("check_node_health", X_Roles="admin")
    assert status(health) == 200
    assert health["body"]["storage_reachable"] is True


def test_queue_actions(ws):
    ws.ask("queue_create", {"queue_name": "q1", "metadata": {"colour": "blue"}})
    ws.ask("queue_create", {"queue_name": "q2"})
    # Raw metadata: no reserved defaults, unlike REST; {} for a missing queue.
    assert ws.ask("queue_get", {"queue_name": "q1"})["body"] == {"colour": "blue"}
    assert ws.ask("queue_get", {"queue_name": "nope"})["body"] == {}
    assert ws.ask("queue_list", {"limit": 1})["body"] == {"queues": [{"name": "q1"}]}
    detailed = ws.ask("queue_list", {"marker": "q1", "detailed": True})["body"]["queues"]
    assert [queue["name"] for queue in detailed] == ["q2"]
    assert detailed[0]["metadata"]["_default_message_ttl"] == 3600

    post(ws, "q1", "a", "b")
    stats = ws.ask("queue_get_stats", {"queue_name": "q1"})
    assert status(stats) == 200
    # The counts come from the stream (not run here): only their shape.
    assert {"claimed", "free", "total"} <= set(stats["body"]["messages"])
    missing = ws.ask("queue_get_stats", {"queue_name": "nope"})
    assert status(missing) == 404
    assert missing["body"]["messages"]["total"] == 0

    assert status(ws.ask("queue_purge", {"queue_name": "q1",
                                         "resource_types": ["messages"]})) == 204
    assert ws.ask("message_list", {"queue_name": "q1", "echo": True})["body"] == {
        "messages": []}
    bad = ws.ask("queue_purge", {"queue_name": "q1", "resource_types": ["planets"]})
    assert status(bad) == 400
    assert bad["body"]["error"] is None  # a plain validation failure

    answer = ws.ask("queue_delete", {"queue_name": "q1"})
    assert (status(answer), answer["body"]) == (204, "Queue q1 removed.")
    assert ws.ask("queue_list")["body"] == {"queues": [{"name": "q2"}]}


def test_message_actions(ws):
    first, second, third = post(ws, "q1", {"n": 1}, {"n": 2}, {"n": 3})
    # Echo is off by default: a client does not see its own messages.
    assert ws.ask("message_list", {"queue_name": "q1"})["body"] == {"messages": []}
    listed = ws.ask("message_list", {"queue_name": "q1", "echo": True, "limit": 2})
    assert [set(message) for message in listed["body"]["messages"]] == [
        {"id", "claim_id", "ttl", "age", "body"}] * 2
    assert [message["id"] for message in listed["body"]["messages"]] == [first, second]
    assert ws.ask("message_list", {"queue_name": "q1"}, client_id=OTHER_CLIENT)[
        "body"]["messages"][2]["body"] == {"n": 3}

    one = ws.ask("message_get", {"queue_name": "q1", "message_id": second})["body"]
    assert one["messages"]["body"] == {"n": 2}  # one message, under a plural key
    many = ws.ask("message_get_many", {"queue_name": "q1", "message_ids": [first, third]})
    assert [message["body"] for message in many["body"]["messages"]] == [{"n": 1}, {"n": 3}]

    missing = ws.ask("message_get", {"queue_name": "q1", "message_id": "0" * 16})
    assert status(missing) == 404
    assert missing["body"]["exception"].startswith("Message 0000000000000000 does not exist")

    assert ws.ask("message_delete", {"queue_name": "q1", "message_id": first})["body"] == {}
    popped = ws.ask("message_delete_many", {"queue_name": "q1", "pop": 1})
    assert status(popped) == 200
    assert [message["body"] for message in popped["body"]["messages"]] == [{"n": 2}]
    deleted = ws.ask("message_delete_many", {"queue_name": "q1", "message_ids": [third]})
    assert (status(deleted), deleted["body"]) == (204, {})
    both = ws.ask("message_delete_many", {"queue_name": "q1", "message_ids": [third],
                                          "pop": 1})
    assert status(both) == 400
    assert status(ws.ask("message_delete_many", {"queue_name": "q1"})) == 400

    too_short = ws.ask("message_post", {"queue_name": "q1",
                                        "messages": [{"body": 1, "ttl": 5}]})
    assert status(too_short) == 400
    assert too_short["body"]["error"] is None


def test_claim_actions(ws):
    first, second = post(ws, "q1", "a", "b")
    claimed = ws.ask("claim_create", {"queue_name": "q1", "limit": 1, "ttl": 120})
    assert status(claimed) == 201
    claim_id = claimed["body"]["claim_id"]
    assert [(m["id"], m["claim_id"]) for m in claimed["body"]["messages"]] == [
        (first, claim_id)]

    got = ws.ask("claim_get", {"queue_name": "q1", "claim_id": claim_id})["body"]
    assert got["ttl"] == 120 and [m["id"] for m in got["messages"]] == [first]
    updated = ws.ask("claim_update", {"queue_name": "q1", "claim_id": claim_id, "ttl": 300})
    assert (status(updated), updated["body"]) == (204, f"Claim {claim_id} updated.")

    refused = ws.ask("message_delete", {"queue_name": "q1", "message_id": first})
    assert status(refused) == 403
    assert refused["body"]["error"] == "Unable to delete"
    assert status(ws.ask("message_delete", {"queue_name": "q1", "message_id": first,
                                            "claim_id": claim_id})) == 204

    released = ws.ask("claim_delete", {"queue_name": "q1", "claim_id": claim_id})
    assert (status(released), released["body"]) == (204, f"Claim {claim_id} deleted.")
    assert status(ws.ask("claim_get", {"queue_name": "q1", "claim_id": claim_id})) == 404

    ws.ask("claim_create", {"queue_name": "q1"})  # takes the second message
    nothing = ws.ask("claim_create", {"queue_name": "q1"})
    assert (status(nothing), nothing["body"]) == (204, {"claim_id": None})


def test_subscription_actions(ws):
    created = ws.ask("subscription_create", {"queue_name": "q1",
                                             "subscriber": "mailto:ops@example.com",
                                             "ttl": 600})
    assert status(created) == 201
    subscription_id = created["body"]["subscription_id"]
    assert created["body"]["message"] == "Subscription q1 created."
    again = ws.ask("subscription_create", {"queue_name": "q1",
                                           "subscriber": "mailto:ops@example.com"})
    assert (status(again), again["body"]) == (409, "Subscription q1 not created.")
    refused = ws.ask("subscription_create", {"queue_name": "q1", "subscriber": "ws://x"})
    assert status(refused) == 400

    got = ws.ask("subscription_get", {"queue_name": "q1", "subscription_id": subscription_id})
    assert got["body"]["subscriber"] == "mailto:ops@example.com"
    assert got["body"]["ttl"] == 600
    listed = ws.ask("subscription_list", {"queue_name": "q1"})["body"]["subscriptions"]
    assert [subscription["id"] for subscription in listed] == [subscription_id]
    removed = ws.ask("subscription_delete", {"queue_name": "q1",
                                             "subscription_id": subscription_id})
    assert (status(removed), removed["body"]) == (
        204, f"Subscription {subscription_id} removed.")
    assert status(ws.ask("subscription_get", {"queue_name": "q1",
                                              "subscription_id": subscription_id})) == 404


# -- connections and push ---------------------------------------------------

def test_a_connection_is_kept_about_two_hours_and_removed_on_disconnect(ws):
    record = ConnectionRecord.get(ws.id)
    assert 2 * 3600 <= record.expires_at - clock.now_ms() // 1000 <= 2 * 3600 + 600
    ws.ask("queue_list")
    assert ConnectionRecord.get(ws.id).project == PROJECT
    ws.close()
    with pytest.raises(DoesNotExist):
        ConnectionRecord.get(ws.id)


def subscribe_connection(ws, queue="q1", binary=False):
    answer = ws.ask("subscription_create", {"queue_name": queue}, binary=binary)
    assert status(answer) == 201, answer
    listed = ws.ask("subscription_list", {"queue_name": queue})["body"]["subscriptions"]
    return next(subscription["subscriber"] for subscription in listed
                if subscription["id"] == answer["body"]["subscription_id"])


def test_a_subscription_without_subscriber_pushes_to_the_connection(ws):
    subscriber = subscribe_connection(ws)
    assert subscriber.startswith(f"wss://{DOMAIN}/dev/@connections/")
    again = ws.ask("subscription_create", {"queue_name": "q1"})
    assert status(again) == 409

    payload = {"body": "hi", "ttl": 300, "queue_name": "q1", "Message_Type": "Notification"}
    assert push.deliver(subscriber, payload).delivered
    assert json.loads(ws.pushed()[-1]) == payload  # bare: no request/answer envelope


def test_a_connection_that_subscribed_in_msgpack_gets_msgpack_pushes(ws):
    subscriber = subscribe_connection(ws, binary=True)
    assert push.deliver(subscriber, {"body": [1, 2]}).delivered
    assert msgpack.unpackb(ws.pushed()[-1]) == {"body": [1, 2]}


def test_the_subscriptions_of_a_connection_go_with_it(gateway, ws):
    subscribe_connection(ws, "q1")
    subscribe_connection(ws, "q2")
    ws.close()
    observer = gateway.connect()
    for queue in ("q1", "q2"):
        assert observer.ask("subscription_list", {"queue_name": queue})["body"] == {
            "subscriptions": []}


def test_a_connection_subscribes_to_a_topic_and_the_subscription_goes_with_it(gateway, ws):
    from chalicelib.storage import subscriptions as subscription_store
    topic_key = f"{PROJECT}/~topics/q1"
    answer = ws.ask("subscription_create", {"queue_name": "q1", "topic": True})
    assert status(answer) == 201, answer
    subscribe_connection(ws, "q1")  # the queue of the same name is another
    [found] = subscription_store.list_live(topic_key)
    assert found.id == answer["body"]["subscription_id"]
    assert found.subscriber.startswith(f"wss://{DOMAIN}/dev/@connections/")
    ws.close()
    assert subscription_store.list_live(topic_key) == []
    assert subscription_store.list_live(f"{PROJECT}/q1") == []


def test_a_push_to_a_gone_connection_forgets_it(gateway, ws):
    subscriber = subscribe_connection(ws)
    gateway.gone.add(ws.id)
    outcome = push.deliver(subscriber, {"body": 1})
    assert not outcome.delivered and not outcome.retryable
    with pytest.raises(DoesNotExist):
        ConnectionRecord.get(ws.id)
    observer = gateway.connect()
    assert observer.ask("subscription_list", {"queue_name": "q1"})["body"] == {
        "subscriptions": []}


def test_an_answer_to_a_gone_connection_forgets_it(gateway, ws):
    subscribe_connection(ws)
    gateway.gone.add(ws.id)
    app_module.websocket_message(ws.event("$default", json.dumps(
        {"action": "queue_list", "headers": headers()})), None)
    with pytest.raises(DoesNotExist):
        ConnectionRecord.get(ws.id)


def stream_records():
    """Everything moto's messages stream holds, as Lambda hands it over."""
    arn = boto3.client("dynamodb").describe_table(
        TableName=MessageRecord.Meta.table_name)["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams")
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")
        records += streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    return [lambda_record(record, arn) for record in records]


def test_a_message_posted_over_rest_is_pushed_by_the_stream_handler(client, ws, monkeypatch):
    # The test client gives a function 3 s: a delivery must fit, with its margin.
    monkeypatch.setenv("WEBHOOK_TIMEOUT", "1")
    subscribe_connection(ws)
    answer = client.http.post("/v2/queues/q1/messages", headers=headers(),
                              body=json.dumps({"messages": [{"body": "news", "ttl": 300}]}))
    assert answer.status_code == 201
    client.lambda_.invoke("notify_subscribers", {"Records": stream_records()})
    assert json.loads(ws.pushed()[-1]) == {"body": "news", "ttl": 300, "queue_name": "q1",
                                           "Message_Type": "Notification"}

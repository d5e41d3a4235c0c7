"""Topics (/v2/topics), as Zaqar's test_topic_lifecycle.py and the queue
routes they mirror: CRUD, metadata with reserved keys, stats, purge,
messages, subscriptions; no claims; apart from the project's queues; a
post notifies the topic's subscribers, and a `queue:NAME` subscriber gets
its own copy to claim."""
import json

import pytest
import test_notifications

from conftest import headers

# The notification tests' fixtures: the stream handler run on moto's stream,
# and confirmation required.
notify, short_timeout = test_notifications.notify, test_notifications.short_timeout
confirming = test_notifications.confirming

TOPIC = "/v2/topics/news"
PATCH = {"Content-Type": "application/openstack-messaging-v2.0-json-patch"}


def put(client, path, body=None, project="test-project"):
    return client.http.put(path, headers=headers(project), body=json.dumps(body or {}))


def test_topic_lifecycle(client):
    created = put(client, TOPIC, {"_default_message_ttl": 120, "colour": "red"})
    assert (created.status_code, created.headers["Location"]) == (201, TOPIC)
    assert put(client, TOPIC).status_code == 204
    shown = client.http.get(TOPIC, headers=headers()).json_body
    assert (shown["colour"], shown["_default_message_ttl"], shown["_max_claim_count"]) == (
        "red", 120, None)
    patched = client.http.patch(TOPIC, headers=headers(**{"Content-Type": PATCH["Content-Type"]}),
                                body=json.dumps([{"op": "replace", "path": "/metadata/colour",
                                                  "value": "blue"}]))
    assert (patched.status_code, patched.json_body["colour"]) == (200, "blue")
    bad = put(client, "/v2/topics/other", {"_default_message_ttl": 1})
    assert bad.status_code == 400
    assert put(client, "/v2/topics/" + "x" * 65).status_code == 400
    assert client.http.delete(TOPIC, headers=headers()).status_code == 204
    assert client.http.get("/v2/topics", headers=headers()).json_body["topics"] == []


def test_topics_and_queues_stay_apart(client):
    put(client, TOPIC)
    put(client, "/v2/queues/jobs")
    put(client, TOPIC, project="another-project")
    listed = client.http.get("/v2/topics?detailed=true", headers=headers()).json_body
    assert [(t["name"], t["href"]) for t in listed["topics"]] == [("news", TOPIC)]
    assert listed["links"][0]["href"].startswith("/v2/topics?")
    queues = client.http.get("/v2/queues", headers=headers()).json_body["queues"]
    assert [q["name"] for q in queues] == ["jobs"]
    client.http.post(f"{TOPIC}/messages", headers=headers(),
                     body=json.dumps({"messages": [{"body": "topic"}]}))
    assert client.http.get("/v2/queues/news/stats", headers=headers()).json_body[
        "messages"]["total"] == 0
    assert client.http.get(f"{TOPIC}/stats", headers=headers("another-project")).json_body[
        "messages"]["total"] == 0


def test_topic_messages_post_list_get_delete_stats_and_purge(client):
    put(client, TOPIC)
    answer = client.http.post(f"{TOPIC}/messages", headers=headers(), body=json.dumps(
        {"messages": [{"body": n} for n in range(3)]}))
    assert answer.status_code == 201
    resources = answer.json_body["resources"]
    assert all(path.startswith(f"{TOPIC}/messages/") for path in resources)
    assert answer.headers["Location"].startswith(f"{TOPIC}/messages?ids=")
    listed = client.http.get(f"{TOPIC}/messages?echo=true", headers=headers()).json_body
    assert [m["body"] for m in listed["messages"]] == [0, 1, 2]
    assert listed["messages"][0]["href"] == resources[0]
    first = client.http.get(resources[0], headers=headers())
    assert (first.status_code, first.json_body["body"]) == (200, 0)
    stats = client.http.get(f"{TOPIC}/stats", headers=headers()).json_body["messages"]
    assert (stats["free"], stats["total"]) == (3, 3)
    assert stats["oldest"]["href"] == resources[0]
    assert client.http.delete(resources[0], headers=headers()).status_code == 204
    assert client.http.get(resources[0], headers=headers()).status_code == 404
    assert client.http.post(f"{TOPIC}/purge", headers=headers(),
                            body=json.dumps({"resource_types": ["messages"]})).status_code == 204
    assert client.http.get(f"{TOPIC}/stats", headers=headers()).json_body["messages"][
        "total"] == 0


@pytest.mark.parametrize("method, path", [
    ("POST", f"{TOPIC}/claims"), ("GET", f"{TOPIC}/claims/0123456789abcdef0123"),
    ("PATCH", f"{TOPIC}/claims/0123456789abcdef0123"),
    ("DELETE", f"{TOPIC}/claims/0123456789abcdef0123")])
def test_topic_messages_cannot_be_claimed(client, method, path):
    put(client, TOPIC)
    client.http.post(f"{TOPIC}/messages", headers=headers(),
                     body=json.dumps({"messages": [{"body": 1}]}))
    answer = client.http.request(method, path, headers=headers(), body="{}")
    assert (answer.status_code, answer.json_body) == (404, {"title": "404 Not Found"})
    listed = client.http.get(f"{TOPIC}/messages?echo=true", headers=headers()).json_body
    assert len(listed["messages"]) == 1


def test_topic_subscriptions(client):
    put(client, TOPIC)
    created = client.http.post(f"{TOPIC}/subscriptions", headers=headers(), body=json.dumps(
        {"subscriber": "queue:jobs", "ttl": 600}))
    assert created.status_code == 201
    sid = created.json_body["subscription_id"]
    path = f"{TOPIC}/subscriptions/{sid}"
    assert client.http.get(path, headers=headers()).json_body["subscriber"] == "queue:jobs"
    listed = client.http.get(f"{TOPIC}/subscriptions", headers=headers()).json_body
    assert [s["id"] for s in listed["subscriptions"]] == [sid]
    assert listed["links"][0]["href"].startswith(f"{TOPIC}/subscriptions?")
    assert client.http.patch(path, headers=headers(),
                             body=json.dumps({"ttl": 900})).status_code == 204
    assert client.http.patch(path, headers=headers(),
                             body=json.dumps({"subscriber": "queue:audit"})).status_code == 204
    assert client.http.get(path, headers=headers()).json_body["subscriber"] == "queue:audit"
    assert client.http.put(f"{path}/confirm", headers=headers(),
                           body=json.dumps({"confirmed": True})).status_code == 204
    assert client.http.get(path, headers=headers()).json_body["confirmed"] is True
    assert client.http.delete(path, headers=headers()).status_code == 204
    assert client.http.get(path, headers=headers()).status_code == 404
    # A queue subscriber names a queue: a topic's only, and a valid name.
    for subscriber, where in (("queue:bad name", TOPIC), ("queue:jobs", "/v2/queues/jobs")):
        refused = client.http.post(f"{where}/subscriptions", headers=headers(),
                                   body=json.dumps({"subscriber": subscriber}))
        assert refused.status_code == 400, (subscriber, where)


def test_a_topic_post_notifies_webhooks_and_copies_to_each_queue(client, notify, receiver):
    put(client, TOPIC)
    for subscriber in (receiver.url, "queue:audit", "queue:billing"):
        assert client.http.post(f"{TOPIC}/subscriptions", headers=headers(), body=json.dumps(
            {"subscriber": subscriber})).status_code == 201
    client.http.post(f"{TOPIC}/messages", headers=headers(),
                     body=json.dumps({"messages": [{"body": {"order": 7}, "ttl": 300}]}))
    assert notify() == {"batchItemFailures": []}
    assert [(b["body"], b["queue_name"]) for b in receiver.bodies()] == [({"order": 7}, "news")]
    for queue in ("audit", "billing"):
        claimed = client.http.post(f"/v2/queues/{queue}/claims", headers=headers(),
                                   body=json.dumps({"ttl": 60}))
        assert claimed.status_code == 201, queue
        assert [(m["body"], m["ttl"]) for m in claimed.json_body["messages"]] == [
            ({"order": 7}, 300)]
    # The copies are the queues' own messages: nothing goes back to the topic.
    assert notify() == {"batchItemFailures": []}
    assert len(receiver.bodies()) == 1


def test_a_topic_subscriber_confirms_with_the_topic_path_it_is_sent(client, notify, receiver,
                                                                    confirming):
    put(client, TOPIC)
    sid = client.http.post(f"{TOPIC}/subscriptions", headers=headers(), body=json.dumps(
        {"subscriber": receiver.url})).json_body["subscription_id"]
    # A queue of the project has nothing to confirm: it is sent nothing, and is live.
    queue_sid = client.http.post(f"{TOPIC}/subscriptions", headers=headers(), body=json.dumps(
        {"subscriber": "queue:audit"})).json_body["subscription_id"]
    assert client.http.get(f"{TOPIC}/subscriptions/{queue_sid}", headers=headers()).json_body[
        "confirmed"] is True
    [request] = receiver.bodies()
    assert (request["URL-Paths"], request["X-Project-ID"]) == (
        f"{TOPIC}/subscriptions/{sid}/confirm", "test-project")
    signed = {name: request[name] for name in (
        "URL-Signature", "URL-Methods", "URL-Paths", "URL-Expires")}
    confirmed = client.http.put(request["URL-Paths"], headers=headers(**signed),
                                body=json.dumps(request["SubscribeBody"]))
    assert confirmed.status_code == 204
    assert client.http.get(f"{TOPIC}/subscriptions/{sid}", headers=headers()).json_body[
        "confirmed"] is True
    client.http.post(f"{TOPIC}/messages", headers=headers(),
                     body=json.dumps({"messages": [{"body": "both"}]}))
    notify()
    assert receiver.bodies()[-1]["body"] == "both"
    claimed = client.http.post("/v2/queues/audit/claims", headers=headers(), body="{}")
    assert [m["body"] for m in claimed.json_body["messages"]] == ["both"]

"""Input a careless or hostile client sends: refused with a 4xx and a
Zaqar error body, with nothing changed, on REST and the websocket alike, so
that no stored value can make a later answer invalid JSON."""
import json

import pytest

from conftest import headers

DEPTH = 975  # what a 2 KB body holds; it reached Python's recursion limit
TOO_DEEP = "[" * DEPTH + "]" * DEPTH
NESTING_ERROR = {"title": "Invalid request body",
                 "description": "JSON may nest at most 100 levels deep."}
PATCH_TYPE = "application/openstack-messaging-v2.0-json-patch"


def nested(levels):
    value = "bottom"
    for _ in range(levels):
        value = [value]
    return value


@pytest.fixture
def resources(client):
    """A queue with a message, a claim on it and a subscription: the ids
    that routes with a body need."""
    h = headers()
    client.http.post("/v2/queues/q/messages", headers=h,
                     body=json.dumps({"messages": [{"body": 1}]}))
    claim = client.http.post("/v2/queues/q/claims", headers=h, body='{"ttl": 60}')
    subscription = client.http.post(
        "/v2/queues/q/subscriptions", headers=h,
        body=json.dumps({"subscriber": "mailto:a@example.com", "ttl": 3600}))
    return {"claim": claim.json_body["messages"][0]["href"].split("claim_id=")[1],
            "subscription": subscription.json_body["subscription_id"]}


ROUTES_WITH_A_BODY = [
    ("PUT", "/v2/queues/q", None),
    ("PATCH", "/v2/queues/q", PATCH_TYPE),
    ("POST", "/v2/queues/q/purge", None),
    ("POST", "/v2/queues/q/share", None),
    ("POST", "/v2/queues/q/messages", None),
    ("POST", "/v2/queues/q/claims", None),
    ("PATCH", "/v2/queues/q/claims/{claim}", None),
    ("POST", "/v2/queues/q/subscriptions", None),
    ("PATCH", "/v2/queues/q/subscriptions/{subscription}", None),
    ("PUT", "/v2/queues/q/subscriptions/{subscription}/confirm", None),
]


@pytest.mark.parametrize("method, path, content_type", ROUTES_WITH_A_BODY)
def test_json_nested_too_deep_is_refused_on_every_route_with_a_body(
        client, resources, method, path, content_type):
    h = headers(**({"Content-Type": content_type} if content_type else {}))
    before = client.http.get("/v2/queues/q/messages?echo=true&include_claimed=true",
                             headers=headers()).json_body
    response = client.http.request(method, path.format(**resources), headers=h,
                                   body='{"a": ' + TOO_DEEP + "}")
    assert (response.status_code, response.json_body) == (400, NESTING_ERROR)
    after = client.http.get("/v2/queues/q/messages?echo=true&include_claimed=true",
                            headers=headers()).json_body
    assert after == before


def test_a_message_nested_as_deep_as_allowed_comes_back_whole(client):
    # {"messages": [{"body": ...}]} takes 3 of the 100 levels.
    too_deep = json.dumps({"messages": [{"body": nested(98)}]})
    posted = client.http.post("/v2/queues/deep/messages", headers=headers(), body=too_deep)
    assert (posted.status_code, posted.json_body) == (400, NESTING_ERROR)
    body = nested(97)
    posted = client.http.post("/v2/queues/deep/messages", headers=headers(),
                              body=json.dumps({"messages": [{"body": body}]}))
    assert posted.status_code == 201
    listed = client.http.get("/v2/queues/deep/messages?echo=true", headers=headers())
    assert listed.json_body["messages"][0]["body"] == body


def test_share_with_paths_that_are_not_names_is_refused(client):
    response = client.http.post("/v2/queues/q/share", headers=headers(),
                                body=json.dumps({"paths": [[]]}))
    assert response.status_code == 400
    assert response.json_body["description"] == "Invalid paths: [[]]"


@pytest.mark.parametrize("name", [".", ".."])
def test_dot_segments_are_no_queue_names(client, name):
    response = client.http.put(f"/v2/queues/{name}", headers=headers())
    assert response.status_code == 400
    assert response.json_body["title"] == "Invalid queue identification"
    assert client.http.get("/v2/queues", headers=headers()).json_body["queues"] == []


def test_a_post_of_as_many_messages_as_allowed_is_stored_whole(client):
    posted = client.http.post("/v2/queues/big/messages", headers=headers(), body=json.dumps(
        {"messages": [{"body": n} for n in range(1000)]}))
    assert posted.status_code == 201
    assert len(posted.json_body["resources"]) == 1000


def test_a_post_that_cannot_land_in_its_window_is_a_503_and_leaves_nothing(
        client, monkeypatch):
    from chalicelib import clock
    real_now, calls = clock.now_ms, []

    def slow_clock():  # each look at the clock finds 3 s gone
        calls.append(1)
        return real_now() + 3000 * len(calls)
    monkeypatch.setattr(clock, "now_ms", slow_clock)
    posted = client.http.post("/v2/queues/slow/messages", headers=headers(), body=json.dumps(
        {"messages": [{"body": n} for n in range(100)]}))
    monkeypatch.setattr(clock, "now_ms", real_now)
    assert posted.status_code == 503
    assert posted.json_body["description"].startswith(
        "The messages could not all be written in time, so none was kept.")
    listed = client.http.get("/v2/queues/slow/messages?echo=true&include_claimed=true",
                             headers=headers())
    assert listed.json_body["messages"] == []

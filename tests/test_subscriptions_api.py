"""The subscriptions API (contract §3.5): create, list, get, update, delete,
confirm; duplicates, expiry, and which subscribers are accepted."""
import dataclasses
import json

import pytest

from chalicelib import config, rest
from chalicelib.storage import subscriptions as store
from conftest import PROJECT, headers

QUEUE = "/v2/queues/news"
WEBHOOK = "http://127.0.0.1:9/hook"  # loopback: the dev stage allows it


def subscribe(client, body, queue=QUEUE):
    return client.http.post(f"{queue}/subscriptions", headers=headers(), body=json.dumps(body))


def subscription_id(client, body, queue=QUEUE):
    answer = subscribe(client, body, queue)
    assert answer.status_code == 201, answer.body
    return answer.json_body["subscription_id"]


def get(client, sid, queue=QUEUE):
    return client.http.get(f"{queue}/subscriptions/{sid}", headers=headers())


def confirm(client, sid, confirmed=True):
    return client.http.put(f"{QUEUE}/subscriptions/{sid}/confirm", headers=headers(),
                           body=json.dumps({"confirmed": confirmed}))


def test_create_then_get(client, clock):
    answer = subscribe(client, {"subscriber": WEBHOOK, "ttl": 600, "options": {"k": "v"}})
    assert answer.status_code == 201
    assert answer.headers["Location"] == f"{QUEUE}/subscriptions"
    sid = answer.json_body["subscription_id"]
    clock.advance(7)
    found = get(client, sid)
    assert found.status_code == 200
    assert found.json_body == {
        "id": sid, "source": "news", "subscriber": WEBHOOK, "ttl": 600, "age": 7,
        "options": {"k": "v"}, "confirmed": False,
        "failed_deliveries": 0, "last_error": None}


def test_defaults_and_the_queue_created_on_the_fly(client):
    sid = subscription_id(client, {"subscriber": "mailto:ops@example.com"})
    found = get(client, sid).json_body
    assert (found["ttl"], found["options"]) == (3600, {})
    listed = client.http.get("/v2/queues", headers=headers()).json_body
    assert [queue["name"] for queue in listed["queues"]] == ["news"]


def test_unconfirmed_duplicate_gets_the_same_id_and_confirmed_one_conflicts(client):
    sid = subscription_id(client, {"subscriber": WEBHOOK})
    assert subscription_id(client, {"subscriber": WEBHOOK}) == sid
    assert confirm(client, sid).status_code == 204
    again = subscribe(client, {"subscriber": WEBHOOK})
    assert again.status_code == 409
    assert again.headers["Location"] == f"{QUEUE}/subscriptions"
    assert again.json_body["title"] == "Resource conflict"
    # Unique per queue, not per project.
    assert subscribe(client, {"subscriber": WEBHOOK}, "/v2/queues/other").status_code == 201


def test_list_pages_in_creation_order(client, clock):
    ids = []
    for n in range(3):
        ids.append(subscription_id(client, {"subscriber": f"{WEBHOOK}/{n}"}))
        clock.advance(1)
    first = client.http.get(f"{QUEUE}/subscriptions?limit=2", headers=headers()).json_body
    assert [s["id"] for s in first["subscriptions"]] == ids[:2]
    assert [s["subscriber"] for s in first["subscriptions"]] == [f"{WEBHOOK}/0", f"{WEBHOOK}/1"]
    assert first["links"] == [{"rel": "next", "href":
                               f"{QUEUE}/subscriptions?limit=2&marker={ids[1]}"}]
    second = client.http.get(first["links"][0]["href"], headers=headers()).json_body
    assert [s["id"] for s in second["subscriptions"]] == ids[2:]
    last = client.http.get(second["links"][0]["href"], headers=headers()).json_body
    assert last == {"subscriptions": [], "links": []}


def test_list_of_a_missing_queue_is_empty(client):
    answer = client.http.get("/v2/queues/nothing/subscriptions", headers=headers())
    assert (answer.status_code, answer.json_body) == (200, {"subscriptions": [], "links": []})


@pytest.mark.parametrize("limit", ["0", "21"])
def test_list_limit_is_bounded(client, limit):
    answer = client.http.get(f"{QUEUE}/subscriptions?limit={limit}", headers=headers())
    assert answer.status_code == 400
    assert answer.json_body["description"] == ("Limit must be at least 1 and may not be "
                                               "greater than 20.")


SUPPORTED = ("The subscriber type of subscription must be supported in the list "
             "['http', 'https', 'mailto', 'trust+http', 'trust+https'].")


@pytest.mark.parametrize("body, description", [
    ({}, "Missing parameter subscriber in body."),
    ({"ttl": 100}, "Missing parameter subscriber in body."),
    ({"subscriber": "ws://example.com/"}, SUPPORTED),
    ({"subscriber": 42}, SUPPORTED),
    ({"subscriber": "trust+https://example.com/"},
     "The subscriber type trust+https needs Keystone trusts, which this service does "
     "not have; use https instead."),
    ({"subscriber": WEBHOOK, "ttl": 59},
     "The TTL for a subscription must be at least 60 seconds long."),
    ({"subscriber": WEBHOOK, "ttl": "60"}, "TTL must be an integer."),
    ({"subscriber": WEBHOOK, "options": []}, "Options must be a dict."),
    ({"subscriber": WEBHOOK, "options": {"_retry_policy": {"minimum_delay": 10,
                                                           "maximum_delay": 15}}},
     "invalid minimum_delay and maximum_delay."),
    ({"subscriber": WEBHOOK, "options": {"_retry_policy": {
        "retry_backoff_function": "cubic"}}}, "invalid retry_backoff_function."),
    ({"subscriber": "http://[::1/"}, "The subscriber http://[::1/ is not a valid URL."),
])
def test_create_refuses_what_zaqar_refuses(client, body, description):
    answer = subscribe(client, body)
    assert answer.status_code == 400
    assert answer.json_body == {"title": "Invalid API request", "description": description}


def test_a_body_that_is_no_object(client):
    answer = client.http.post(f"{QUEUE}/subscriptions", headers=headers(), body="[1]")
    assert answer.status_code == 400
    assert answer.json_body["description"] == "Subscriptions must be a dict."


@pytest.mark.parametrize("subscriber", [
    "http://169.254.169.254/latest/meta-data/",  # the instance metadata endpoint
    "http://10.0.0.8/", "https://192.168.1.1:8443/", "http://[fe80::1]/",
])
def test_webhooks_into_private_networks_are_refused(client, subscriber):
    answer = subscribe(client, {"subscriber": subscriber})
    assert answer.status_code == 400
    assert "loopback, link-local or private address" in answer.json_body["description"]


def test_loopback_is_refused_unless_allowed(client, monkeypatch):
    # As on the prod stage. (The test client sets the dev stage's variables
    # during each request, so the settings are replaced where they are read.)
    stage_settings = config.get_settings
    monkeypatch.setattr(rest, "get_settings", lambda: dataclasses.replace(
        stage_settings(), webhook_allowed_networks=""))
    for subscriber in (WEBHOOK, "http://localhost:8080/", "http://[::ffff:127.0.0.1]/"):
        answer = subscribe(client, {"subscriber": subscriber})
        assert answer.status_code == 400, subscriber
    assert subscribe(client, {"subscriber": "https://example.com/hook"}).status_code == 201


def test_update_replaces_options_and_restarts_the_ttl(client, clock):
    sid = subscription_id(client, {"subscriber": WEBHOOK, "ttl": 100, "options": {"a": 1}})
    clock.advance(50)
    answer = client.http.patch(f"{QUEUE}/subscriptions/{sid}", headers=headers(),
                               body=json.dumps({"ttl": 100, "options": {"b": 2}}))
    assert answer.status_code == 204
    assert answer.headers["Location"] == f"{QUEUE}/subscriptions/{sid}"
    found = get(client, sid).json_body
    assert (found["options"], found["age"]) == ({"b": 2}, 0)
    clock.advance(60)  # 110 s after creation: alive, since the ttl restarted at 50 s
    assert get(client, sid).status_code == 200


def test_a_new_subscriber_frees_the_old_one_and_must_confirm_again(client):
    sid = subscription_id(client, {"subscriber": WEBHOOK})
    confirm(client, sid)
    client.http.patch(f"{QUEUE}/subscriptions/{sid}", headers=headers(),
                      body=json.dumps({"subscriber": "mailto:ops@example.com"}))
    found = get(client, sid).json_body
    assert (found["subscriber"], found["confirmed"]) == ("mailto:ops@example.com", False)
    assert subscription_id(client, {"subscriber": WEBHOOK}) != sid


def test_update_to_a_subscriber_already_there_conflicts(client):
    subscription_id(client, {"subscriber": WEBHOOK})
    sid = subscription_id(client, {"subscriber": "mailto:ops@example.com"})
    answer = client.http.patch(f"{QUEUE}/subscriptions/{sid}", headers=headers(),
                               body=json.dumps({"subscriber": WEBHOOK}))
    assert answer.status_code == 409
    assert get(client, sid).json_body["subscriber"] == "mailto:ops@example.com"


def test_update_leaves_fields_sent_as_null_as_they_are(client, clock):
    # What `openstack messaging subscription update --ttl 7200` sends.
    sid = subscription_id(client, {"subscriber": WEBHOOK, "ttl": 100, "options": {"a": 1}})
    confirm(client, sid)
    answer = client.http.patch(f"{QUEUE}/subscriptions/{sid}", headers=headers(), body=json.dumps(
        {"subscriber": None, "ttl": 7200, "options": None}))
    assert answer.status_code == 204
    found = get(client, sid).json_body
    assert (found["subscriber"], found["ttl"], found["options"], found["confirmed"]) == (
        WEBHOOK, 7200, {"a": 1}, True)
    only_nulls = client.http.patch(f"{QUEUE}/subscriptions/{sid}", headers=headers(),
                                   body=json.dumps({"subscriber": None, "options": None}))
    assert only_nulls.status_code == 204
    assert get(client, sid).json_body == found
    missing = client.http.patch(f"{QUEUE}/subscriptions/nope", headers=headers(),
                                body=json.dumps({"subscriber": None}))
    assert missing.status_code == 404


@pytest.mark.parametrize("body, status, description", [
    ('{"ttl": 7200, "options": []}', 400, "Options must be a dict."),
    ('{"ttl": null, "subscriber": "gopher://example.com"}', 400, None),
])
def test_update_with_nulls_still_checks_the_other_fields(client, body, status, description):
    sid = subscription_id(client, {"subscriber": WEBHOOK})
    answer = client.http.patch(f"{QUEUE}/subscriptions/{sid}", headers=headers(), body=body)
    assert answer.status_code == status
    if description:
        assert answer.json_body["description"] == description
    assert get(client, sid).json_body["subscriber"] == WEBHOOK


@pytest.mark.parametrize("body, status, description", [
    ("{}", 400, "No subscription to create."),
    ("", 400, "No subscription to create."),
    ("[]", 400, "Subscriptions must be a dict."),
    ('{"ttl": 1}', 400, "The TTL for a subscription must be at least 60 seconds long."),
])
def test_update_refusals(client, body, status, description):
    sid = subscription_id(client, {"subscriber": WEBHOOK})
    answer = client.http.patch(f"{QUEUE}/subscriptions/{sid}", headers=headers(), body=body)
    assert (answer.status_code, answer.json_body["description"]) == (status, description)


def test_unknown_subscriptions(client):
    assert get(client, "nope").json_body == {
        "title": "Not found", "description": "Subscription nope does not exist"}
    patched = client.http.patch(f"{QUEUE}/subscriptions/nope", headers=headers(),
                                body=json.dumps({"ttl": 100}))
    assert patched.status_code == 404
    assert confirm(client, "nope").status_code == 404
    deleted = client.http.delete(f"{QUEUE}/subscriptions/nope", headers=headers())
    assert deleted.status_code == 204


def test_confirm_and_unconfirm(client):
    sid = subscription_id(client, {"subscriber": WEBHOOK})
    answer = confirm(client, sid)
    assert answer.status_code == 204
    assert answer.headers["Location"] == f"{QUEUE}/subscriptions/{sid}/confirm"
    assert get(client, sid).json_body["confirmed"] is True
    confirm(client, sid, confirmed=False)
    assert get(client, sid).json_body["confirmed"] is False


@pytest.mark.parametrize("body", ['{"confirmed": "yes"}', "{}", ""])
def test_confirm_needs_a_boolean(client, body):
    sid = subscription_id(client, {"subscriber": WEBHOOK})
    answer = client.http.put(f"{QUEUE}/subscriptions/{sid}/confirm", headers=headers(),
                             body=body)
    assert answer.status_code == 400
    assert answer.json_body["description"] == "The 'confirmed' should be boolean."


def test_confirm_is_put_only(client):
    answer = client.http.post(f"{QUEUE}/subscriptions/x/confirm", headers=headers(), body="{}")
    assert (answer.status_code, answer.headers["Allow"]) == (405, "PUT, OPTIONS")


def test_delete_frees_the_subscriber(client):
    sid = subscription_id(client, {"subscriber": WEBHOOK})
    confirm(client, sid)
    assert client.http.delete(f"{QUEUE}/subscriptions/{sid}",
                              headers=headers()).status_code == 204
    assert get(client, sid).status_code == 404
    assert subscription_id(client, {"subscriber": WEBHOOK}) != sid


def test_expired_subscriptions_are_gone(client, clock):
    sid = subscription_id(client, {"subscriber": WEBHOOK, "ttl": 60})
    confirm(client, sid)
    clock.advance(61)
    assert get(client, sid).status_code == 404
    listed = client.http.get(f"{QUEUE}/subscriptions", headers=headers()).json_body
    assert listed["subscriptions"] == []
    assert subscription_id(client, {"subscriber": WEBHOOK}) != sid


def test_projects_do_not_see_each_others_subscriptions(client):
    sid = subscription_id(client, {"subscriber": WEBHOOK})
    other = headers(project="someone-else")
    assert client.http.get(f"{QUEUE}/subscriptions/{sid}", headers=other).status_code == 404
    listed = client.http.get(f"{QUEUE}/subscriptions", headers=other).json_body
    assert listed["subscriptions"] == []


def test_purging_the_queues_subscriptions_frees_their_subscribers(client):
    # What a purge of "subscriptions" calls (POST /v2/queues/{q}/purge).
    confirm(client, subscription_id(client, {"subscriber": WEBHOOK}))
    subscription_id(client, {"subscriber": "mailto:ops@example.com"})
    store.purge(PROJECT, "news")
    listed = client.http.get(f"{QUEUE}/subscriptions", headers=headers()).json_body
    assert listed["subscriptions"] == []
    assert subscribe(client, {"subscriber": WEBHOOK}).status_code == 201

"""The messages API against the contract (docs: /work/shared/zaqar-v2-api.md,
§3.3 and §5), through the Chalice test client on moto.

Time is frozen by the `clock` fixture and moved by the tests, so ages are exact
and expiry is tested without sleeping.
"""
import dataclasses
import hashlib
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib import rest
from conftest import CLIENT_ID, PROJECT
from support.api import (
    CONSUMER,
    MESSAGES,
    NO_CLAIM_ERROR,
    call,
    claim,
    create_queue,
    delete_message,
    error,
    get_message,
    list_messages,
    listed_ids,
    post_messages,
    queue_names,
    status_and_body,
)

pytestmark = pytest.mark.usefixtures("clock")  # time stands still in every test
TTL_RANGE_ERROR = ("The TTL for a message may not exceed 1209600 seconds, "
                   "and must be at least 60 seconds long.")


# -- post ---------------------------------------------------------------------

def test_post_returns_resources_in_posting_order_and_a_location_for_all(client):
    bodies = [{"event": "created", "n": [1, 2]}, "plain text", 42.5, [1, "two", None]]
    response = call(client, "POST", MESSAGES,
                    {"messages": [{"body": body} for body in bodies]})

    assert response.status_code == 201, response.body
    resources = response.json_body["resources"]
    assert response.json_body == {"resources": resources}
    ids = [href.rsplit("/", 1)[1] for href in resources]
    assert resources == [f"{MESSAGES}/{message_id}" for message_id in ids]
    assert len(set(ids)) == 4
    assert response.headers["Location"] == f"{MESSAGES}?ids={','.join(ids)}"
    fetched = call(client, "GET", response.headers["Location"]).json_body["messages"]
    assert [message["body"] for message in fetched] == bodies


def test_post_keeps_only_body_and_ttl(client):
    [message_id] = post_messages(client, [{"body": {"k": "v"}, "ttl": 120,
                                           "extra": "dropped", "claim_id": "x"}])

    assert get_message(client, message_id).json_body == {
        "id": message_id, "href": f"{MESSAGES}/{message_id}", "ttl": 120, "age": 0,
        "body": {"k": "v"}}


@pytest.mark.parametrize("metadata, ttl", [({}, 3600), ({"_default_message_ttl": 120}, 120)])
def test_post_without_ttl_takes_the_queue_default_else_3600(client, metadata, ttl):
    create_queue(client, metadata)
    [message_id] = post_messages(client, [{"body": 1}])

    assert get_message(client, message_id).json_body["ttl"] == ttl


@pytest.mark.parametrize("ttl", [60, 1209600])
def test_post_accepts_ttl_at_its_bounds(client, ttl):
    [message_id] = post_messages(client, [{"body": 1, "ttl": ttl}])

    assert get_message(client, message_id).json_body["ttl"] == ttl


BAD_POSTS = [
    pytest.param({"items": [{"body": 1}]}, "Invalid API request",
                 "No messages were found in the request body.", id="no messages key"),
    pytest.param([{"body": 1}], "Invalid API request",
                 "No messages were found in the request body.", id="bare array"),
    pytest.param({"messages": {"body": 1}}, "Invalid request body",
                 "Document type not supported.", id="messages not an array"),
    pytest.param({"messages": []}, "Invalid API request", "No messages to enqueu.",
                 id="empty array"),
    pytest.param({"messages": [{"ttl": 60}]}, "Invalid request body",
                 'Missing "body" field.', id="body missing"),
    pytest.param({"messages": [{"body": 1, "ttl": "60"}]}, "Invalid request body",
                 'The value of the "ttl" field must be a int.', id="ttl a string"),
    pytest.param({"messages": [{"body": 1, "ttl": 60.5}]}, "Invalid request body",
                 'The value of the "ttl" field must be a int.', id="ttl a float"),
    pytest.param({"messages": [{"body": 1, "ttl": 59}]}, "Invalid API request",
                 TTL_RANGE_ERROR, id="ttl below 60"),
    pytest.param({"messages": [{"body": 1, "ttl": 1209601}]}, "Invalid API request",
                 TTL_RANGE_ERROR, id="ttl above max"),
    pytest.param({"messages": [{"body": 1}, {"body": 2, "ttl": 59}]}, "Invalid API request",
                 TTL_RANGE_ERROR, id="one bad message of two"),
    pytest.param({"messages": [{"body": 1}] * 1001}, "Invalid API request",
                 "A post may hold at most 1000 messages; post the others in another "
                 "request.", id="more messages than a post may hold"),
]


@pytest.mark.parametrize("document, title, description", BAD_POSTS)
def test_post_rejects_a_bad_batch_and_stores_nothing(client, document, title, description):
    response = call(client, "POST", MESSAGES, document)

    assert status_and_body(response) == error(400, title, description)
    assert queue_names(client) == []
    assert list_messages(client, "?include_claimed=true") == {"messages": [], "links": []}


def test_post_with_a_bad_message_in_a_batch_stores_none_in_an_existing_queue(client):
    post_messages(client, [{"body": "kept"}])
    response = call(client, "POST", MESSAGES,
                    {"messages": [{"body": "good"}, {"body": "bad", "ttl": 10}]})

    assert response.status_code == 400
    assert [m["body"] for m in list_messages(client)["messages"]] == ["kept"]


def test_post_creates_a_missing_queue(client):
    assert queue_names(client) == []
    post_messages(client, [{"body": 1}], queue="lazy")

    assert queue_names(client) == ["lazy"]


def post_of_size(size):
    """A one-message post body of exactly `size` bytes."""
    empty = json.dumps({"messages": [{"body": ""}]})
    return json.dumps({"messages": [{"body": "x" * (size - len(empty))}]})


@pytest.mark.parametrize("metadata, limit, description", [
    ({}, 262144, "Message collection size is too large. Max size 262144"),
    ({"_max_messages_post_size": 1000}, 1000,
     "Message collection size is too large. The max size for current queue is 1000. "
     "It is calculated by max size = min(max_messages_post_size_config: 262144, "
     "max_messages_post_size_queue: 1000)."),
])
def test_post_size_is_limited_by_content_length(client, metadata, limit, description):
    create_queue(client, metadata)
    assert len(post_of_size(limit)) == limit

    too_large = call(client, "POST", MESSAGES, post_of_size(limit + 1))
    assert status_and_body(too_large) == error(400, "Invalid API request", description)
    assert list_messages(client)["messages"] == []
    assert call(client, "POST", MESSAGES, post_of_size(limit)).status_code == 201


def test_post_size_limit_of_the_queue_at_the_config_maximum_names_both(client):
    create_queue(client, {"_max_messages_post_size": 262144})

    response = call(client, "POST", MESSAGES, post_of_size(262145))
    assert status_and_body(response) == error(
        400, "Invalid API request",
        "Message collection size is too large. The max size for current queue is "
        "262144. It is calculated by max size = min(max_messages_post_size_config: "
        "262144, max_messages_post_size_queue: 262144).")


# -- delayed messages -----------------------------------------------------------

DELAY_RANGE_ERROR = ("The Delay for a message may not exceed 900 seconds, "
                     "and must be at least 0 seconds long.")


@pytest.mark.parametrize("delay, description", [
    (-1, DELAY_RANGE_ERROR), (901, DELAY_RANGE_ERROR),
    ("5", 'The value of the "delay" field must be a int.'),
])
def test_post_rejects_a_bad_delay_on_a_delayed_queue(client, delay, description):
    create_queue(client, {"_default_message_delay": 30})
    response = call(client, "POST", MESSAGES, {"messages": [{"body": 1, "delay": delay}]})

    assert (response.status_code, response.json_body["description"]) == (400, description)
    assert list_messages(client, "?include_delayed=true")["messages"] == []


def test_delayed_messages_are_hidden_while_delayed(client, clock):
    create_queue(client, {"_default_message_delay": 30})
    default_delay, no_delay, longest = post_messages(
        client, [{"body": "default"}, {"body": "now", "delay": 0},
                 {"body": "longest", "delay": 900}])
    clock.advance(29)

    assert listed_ids(client) == [no_delay]
    assert listed_ids(client, "?include_delayed=true") == [default_delay, no_delay, longest]


def test_delayed_messages_are_listed_once_their_delay_ends(client, clock):
    create_queue(client, {"_default_message_delay": 30})
    default_delay, no_delay, longest = post_messages(
        client, [{"body": "default"}, {"body": "now", "delay": 0},
                 {"body": "longest", "delay": 900}])

    clock.advance(30)
    assert listed_ids(client) == [default_delay, no_delay]
    clock.advance(870)
    assert listed_ids(client) == [default_delay, no_delay, longest]


def test_delayed_messages_are_not_claimed_until_their_delay_ends(client, clock):
    create_queue(client, {"_default_message_delay": 30})
    [message_id] = post_messages(client, [{"body": 1}])

    assert claim(client) == (None, [])
    clock.advance(30)
    assert [m["id"] for m in claim(client)[1]] == [message_id]


@pytest.mark.parametrize("delay", [30, 901])
def test_delay_is_dropped_on_a_queue_without_a_default_delay(client, delay):
    [message_id] = post_messages(client, [{"body": 1, "delay": delay}])

    assert listed_ids(client) == [message_id]
    assert [m["id"] for m in claim(client)[1]] == [message_id]


# -- list ---------------------------------------------------------------------

def test_list_shows_the_message_fields_and_age(client, clock):
    [message_id] = post_messages(client, [{"body": {"a": 1}, "ttl": 300}])
    clock.advance(7)

    page = list_messages(client)
    assert page["messages"] == [{"id": message_id, "href": f"{MESSAGES}/{message_id}",
                                 "ttl": 300, "age": 7, "body": {"a": 1}}]


def test_list_limit_defaults_to_10_and_goes_up_to_20(client):
    ids = post_messages(client, [{"body": n} for n in range(25)])

    assert listed_ids(client) == ids[:10]
    assert listed_ids(client, "?limit=20") == ids[:20]
    assert listed_ids(client, "?limit=1") == ids[:1]


@pytest.mark.parametrize("limit, expected", [
    ("0", error(400, "Invalid API request",
                "Limit must be at least 1 and may not be greater than 20.")),
    ("21", error(400, "Invalid API request",
                 "Limit must be at least 1 and may not be greater than 20.")),
    ("-3", error(400, "Invalid API request",
                 "Limit must be at least 1 and may not be greater than 20.")),
    ("ten", error(400, "Invalid parameter",
                  'The "limit" parameter is invalid. The value must be an integer.')),
])
def test_list_rejects_a_limit_out_of_range(client, limit, expected):
    post_messages(client, [{"body": 1}])

    response = call(client, "GET", f"{MESSAGES}?limit={limit}", client_id=CONSUMER)
    assert status_and_body(response) == expected


def next_href(page):
    [link] = page["links"]
    assert link["rel"] == "next"
    return link["href"]


def test_paging_through_next_links_never_skips_or_repeats_a_message(client):
    batches = [[{"body": f"{size}-{n}"} for n in range(size)] for size in (1, 9, 20, 15)]
    posted = post_messages(client, batches.pop(0))

    seen, href = [], f"{MESSAGES}?limit=7"
    while True:
        path, _, query = href.partition("?")
        assert path == MESSAGES
        page = list_messages(client, f"?{query}")
        if not page["messages"] and not batches:
            assert page["links"] == []
            break
        seen += [message["id"] for message in page["messages"]]
        href = next_href(page) if page["messages"] else href
        if batches:  # the producer keeps posting while the consumer pages
            posted += post_messages(client, batches.pop(0))
    assert len(posted) == 45
    assert seen == posted


def test_next_link_repeats_the_parameters_and_forces_include_delayed(client):
    ids = post_messages(client, [{"body": n} for n in range(3)])

    page = list_messages(client, "?limit=2&echo=true", client_id=CLIENT_ID)
    link = urlsplit(next_href(page))
    assert link.path == MESSAGES
    assert parse_qs(link.query) == {"limit": ["2"], "echo": ["true"],
                                    "include_delayed": ["true"], "marker": [ids[1]]}


def test_list_after_a_bogus_marker_is_an_empty_page(client):
    post_messages(client, [{"body": 1}])

    assert list_messages(client, "?marker=bogus") == {"messages": [], "links": []}


@pytest.mark.parametrize("queue", ["q", "missing"])
def test_list_of_an_empty_or_missing_queue_is_an_empty_page(client, queue):
    create_queue(client, {})

    assert list_messages(client, queue=queue) == {"messages": [], "links": []}


def test_list_leaves_out_the_callers_own_messages_unless_echo(client):
    [message_id] = post_messages(client, [{"body": 1}])

    assert listed_ids(client, client_id=CLIENT_ID) == []
    assert listed_ids(client, "?echo=false", client_id=CLIENT_ID) == []
    assert listed_ids(client, "?echo=true", client_id=CLIENT_ID) == [message_id]
    assert listed_ids(client) == [message_id]


def test_list_shows_claimed_messages_only_with_include_claimed(client):
    first, second, third = post_messages(client, [{"body": n} for n in range(3)])
    claim_id, _ = claim(client, query="?limit=2")

    assert listed_ids(client) == [third]
    page = list_messages(client, "?include_claimed=true")
    assert [(m["id"], m["href"]) for m in page["messages"]] == [
        (first, f"{MESSAGES}/{first}?claim_id={claim_id}"),
        (second, f"{MESSAGES}/{second}?claim_id={claim_id}"),
        (third, f"{MESSAGES}/{third}")]
    assert parse_qs(urlsplit(next_href(page)).query)["include_claimed"] == ["true"]


def test_expired_messages_are_never_seen(client, clock):
    short, long = post_messages(client, [{"body": "short", "ttl": 60},
                                         {"body": "long", "ttl": 120}])
    clock.advance(60)

    assert listed_ids(client) == [long]
    assert listed_ids(client, "?include_claimed=true") == [long]
    assert status_and_body(get_message(client, short)) == error(
        404, "Not found", f"Message {short} does not exist in queue q for project {PROJECT}")
    assert [m["id"] for m in call(client, "GET", f"{MESSAGES}?ids={short},{long}")
            .json_body["messages"]] == [long]
    assert [m["id"] for m in claim(client)[1]] == [long]


def test_expired_messages_are_not_popped(client, clock):
    post_messages(client, [{"body": "short", "ttl": 60}])
    clock.advance(61)

    response = call(client, "DELETE", f"{MESSAGES}?pop=5")
    assert status_and_body(response) == (200, {"messages": []})


# -- get by ids -------------------------------------------------------------------

@pytest.mark.parametrize("query", ["?ids={0},{2}", "?ids={0}&ids={2}"])
def test_get_by_ids_comma_separated_or_repeated(client, query):
    ids = post_messages(client, [{"body": n} for n in range(3)])

    response = call(client, "GET", MESSAGES + query.format(*ids))
    assert response.status_code == 200
    assert response.json_body == {"messages": [
        {"id": ids[0], "href": f"{MESSAGES}/{ids[0]}", "ttl": 3600, "age": 0, "body": 0},
        {"id": ids[2], "href": f"{MESSAGES}/{ids[2]}", "ttl": 3600, "age": 0, "body": 2}]}


def test_get_by_ids_skips_unknown_and_malformed_ids_and_ignores_echo(client):
    [message_id] = post_messages(client, [{"body": 1}])
    unknown = f"{int(message_id, 16) + 1:016x}"

    response = call(client, "GET", f"{MESSAGES}?ids=bogus,{unknown},{message_id}")
    assert [m["id"] for m in response.json_body["messages"]] == [message_id]


def test_get_by_ids_includes_claimed_messages(client):
    [message_id] = post_messages(client, [{"body": 1}])
    claim_id, _ = claim(client)

    [message] = call(client, "GET", f"{MESSAGES}?ids={message_id}").json_body["messages"]
    assert message["href"] == f"{MESSAGES}/{message_id}?claim_id={claim_id}"


def test_get_by_ids_with_none_found_is_404(client):
    [message_id] = post_messages(client, [{"body": 1}])
    call(client, "DELETE", f"{MESSAGES}/{message_id}")

    response = call(client, "GET", f"{MESSAGES}?ids={message_id},bogus")
    assert status_and_body(response) == error(
        404, "Not found", f"No messages with IDs: ['{message_id}', 'bogus'] found in "
                          f"the queue q for project {PROJECT}.")


def test_get_by_ids_takes_at_most_20(client):
    ids = post_messages(client, [{"body": n} for n in range(21)])

    assert call(client, "GET", f"{MESSAGES}?ids={','.join(ids[:20])}").status_code == 200
    response = call(client, "GET", f"{MESSAGES}?ids={','.join(ids)}")
    assert status_and_body(response) == error(
        400, "Invalid API request", "Limit must be at least 1 and may not be greater than 20.")


# -- get one --------------------------------------------------------------------

def test_get_one_message(client, clock):
    [message_id] = post_messages(client, [{"body": ["x"], "ttl": 600}])
    clock.advance(3)

    response = get_message(client, message_id, client_id=CONSUMER)
    assert status_and_body(response) == (200, {
        "id": message_id, "href": f"{MESSAGES}/{message_id}", "ttl": 600, "age": 3,
        "body": ["x"]})


@pytest.mark.parametrize("message_id", ["bogus", "ffffffffffffffff"])
def test_get_one_unknown_message_is_404(client, message_id):
    post_messages(client, [{"body": 1}])

    assert status_and_body(get_message(client, message_id)) == error(
        404, "Not found",
        f"Message {message_id} does not exist in queue q for project {PROJECT}")


def test_get_one_claimed_message_names_its_claim(client):
    [message_id] = post_messages(client, [{"body": 1}])
    claim_id, _ = claim(client)

    assert (get_message(client, message_id).json_body["href"]
            == f"{MESSAGES}/{message_id}?claim_id={claim_id}")


# -- delete one -------------------------------------------------------------------

def is_stored(client, message_id):
    return get_message(client, message_id).status_code == 200


CLAIMED_ERROR = error(403, "Unable to delete", "This message is claimed; it cannot be "
                                               "deleted without a valid claim ID.")
NOT_CLAIMED_ERROR = error(400, "Unable to delete",
                          "A claim was specified, but the message is not currently claimed.")


@pytest.mark.parametrize("path", [f"{MESSAGES}/0123456789abcdef", f"{MESSAGES}/bogus",
                                  "/v2/queues/missing/messages/0123456789abcdef"])
def test_delete_of_a_missing_message_or_queue_is_204(client, path):
    post_messages(client, [{"body": 1}])

    response = call(client, "DELETE", path)
    assert (response.status_code, response.body) == (204, b"")


def test_delete_of_an_unclaimed_message(client):
    kept, deleted = post_messages(client, [{"body": 1}, {"body": 2}])

    assert delete_message(client, deleted).status_code == 204
    assert listed_ids(client) == [kept]
    assert get_message(client, deleted).status_code == 404


def test_delete_of_a_claimed_message_needs_its_claim(client):
    [message_id] = post_messages(client, [{"body": 1}])
    claim_id, _ = claim(client)

    assert status_and_body(delete_message(client, message_id)) == CLAIMED_ERROR
    assert is_stored(client, message_id)
    assert delete_message(client, message_id, claim_id).status_code == 204
    assert not is_stored(client, message_id)


@pytest.mark.parametrize("claim_id", ["bogus", "0123456789abcdef0123"])
def test_delete_with_a_malformed_or_unknown_claim_is_400(client, claim_id):
    [message_id] = post_messages(client, [{"body": 1}])
    claim(client)

    assert status_and_body(delete_message(client, message_id, claim_id)) == NO_CLAIM_ERROR
    assert is_stored(client, message_id)


def test_delete_naming_a_claim_of_an_unclaimed_message_is_400(client):
    claimed, unclaimed = post_messages(client, [{"body": 1}, {"body": 2}])
    claim_id, _ = claim(client, query="?limit=1")

    assert status_and_body(delete_message(client, unclaimed, claim_id)) == NOT_CLAIMED_ERROR
    assert is_stored(client, unclaimed)


def test_delete_naming_another_live_claim_is_403(client):
    first, _ = post_messages(client, [{"body": 1}, {"body": 2}])
    claim(client, query="?limit=1")
    second_claim, _ = claim(client, query="?limit=1")

    assert status_and_body(delete_message(client, first, second_claim)) == CLAIMED_ERROR
    assert is_stored(client, first)


def test_a_repeated_claim_id_counts_as_its_last_value(client):
    [message_id] = post_messages(client, [{"body": 1}])
    claim_id, _ = claim(client)

    wrong_last = delete_message(client, message_id, f"{claim_id}&claim_id=bogus")
    assert status_and_body(wrong_last) == NO_CLAIM_ERROR
    assert is_stored(client, message_id)
    right_last = delete_message(client, message_id, f"bogus&claim_id={claim_id}")
    assert right_last.status_code == 204
    assert not is_stored(client, message_id)


# -- bulk delete and pop ----------------------------------------------------------------

def test_bulk_delete_removes_claimed_messages_too_and_ignores_unknown_ids(client):
    claimed, free, kept = post_messages(client, [{"body": n} for n in range(3)])
    claim(client, query="?limit=1")

    response = call(client, "DELETE", f"{MESSAGES}?ids={claimed},{free},bogus,ffffffffffffffff")
    assert (response.status_code, response.body) == (204, b"")
    assert listed_ids(client, "?include_claimed=true") == [kept]
    assert get_message(client, claimed).status_code == 404


def test_bulk_delete_takes_1_to_20_ids(client):
    ids = post_messages(client, [{"body": n} for n in range(21)])

    response = call(client, "DELETE", f"{MESSAGES}?ids={','.join(ids)}")
    assert status_and_body(response) == error(
        400, "Invalid API request",
        "ids parameter should have at least 1 and not greater than 20 values.")
    assert len(listed_ids(client, "?limit=20")) == 20
    assert call(client, "DELETE", f"{MESSAGES}?ids={','.join(ids[:20])}").status_code == 204
    assert listed_ids(client) == ids[20:]


def test_bulk_delete_on_a_missing_queue_is_204(client):
    assert call(client, "DELETE", f"{MESSAGES}?ids=0123456789abcdef").status_code == 204


@pytest.mark.parametrize("query, expected", [
    ("?ids=0123456789abcdef&pop=1", error(
        400, "Invalid API request",
        "pop and id params cannot be present together in the delete request.")),
    ("", error(400, "Invalid API request",
               'The request should have either "ids" or "pop" parameter in the request, '
               "to be able to delete.")),
    ("?pop=0", error(400, "Invalid API request",
                     "Pop value must be at least 1 and may not be greater than 20.")),
    ("?pop=21", error(400, "Invalid API request",
                      "Pop value must be at least 1 and may not be greater than 20.")),
    ("?pop=-1", error(400, "Invalid API request",
                      "Pop value must be at least 1 and may not be greater than 20.")),
])
def test_bulk_delete_request_errors(client, query, expected):
    ids = post_messages(client, [{"body": 1}])

    assert status_and_body(call(client, "DELETE", MESSAGES + query)) == expected
    assert listed_ids(client) == ids


def test_pop_removes_the_oldest_free_messages(client, clock):
    claimed, first, second, third = post_messages(
        client, [{"body": n, "ttl": 600} for n in range(4)])
    claim(client, query="?limit=1")
    clock.advance(2)

    response = call(client, "DELETE", f"{MESSAGES}?pop=2")
    assert response.status_code == 200
    popped = response.json_body["messages"]
    assert [{key: message[key] for key in ("id", "age", "ttl", "body")}
            for message in popped] == [{"id": first, "age": 2, "ttl": 600, "body": 1},
                                       {"id": second, "age": 2, "ttl": 600, "body": 2}]
    assert {key for message in popped for key in message} == {
        "id", "age", "ttl", "body", "claim_id", "claim_count"}
    assert listed_ids(client, "?include_claimed=true") == [claimed, third]


def test_pop_records_show_the_claims_a_message_had(client):
    twice, never = post_messages(client, [{"body": "twice"}, {"body": "never"}])
    for _ in range(2):
        claim_id = claim(client, query="?limit=1")[0]
        call(client, "DELETE", f"/v2/queues/q/claims/{claim_id}")

    popped = call(client, "DELETE", f"{MESSAGES}?pop=2").json_body["messages"]
    assert [(m["id"], m["claim_id"], m["claim_count"]) for m in popped] == [
        (twice, None, 2), (never, None, 0)]


def test_pop_takes_at_most_what_is_free(client):
    ids = post_messages(client, [{"body": n} for n in range(3)])

    popped = call(client, "DELETE", f"{MESSAGES}?pop=20").json_body["messages"]
    assert [message["id"] for message in popped] == ids
    assert status_and_body(call(client, "DELETE", f"{MESSAGES}?pop=20")) == (
        200, {"messages": []})


@pytest.mark.parametrize("queue", ["q", "missing"])
def test_pop_of_an_empty_or_missing_queue(client, queue):
    create_queue(client, {})

    response = call(client, "DELETE", f"/v2/queues/{queue}/messages?pop=1")
    assert status_and_body(response) == (200, {"messages": []})


# -- projects -------------------------------------------------------------------------

def test_nothing_of_one_project_is_visible_or_changeable_from_another(client):
    other = {"project": "other-project"}
    ids = post_messages(client, [{"body": n} for n in range(3)])
    claim_id, _ = claim(client, query="?limit=1")
    claim_path = f"/v2/queues/q/claims/{claim_id}"

    assert queue_names(client, project="other-project") == []
    assert list_messages(client, "?include_claimed=true", **other)["messages"] == []
    assert get_message(client, ids[1], **other).status_code == 404
    assert call(client, "GET", f"{MESSAGES}?ids={','.join(ids)}", **other).status_code == 404
    assert call(client, "GET", claim_path, **other).status_code == 404
    assert call(client, "PATCH", claim_path, {"ttl": 60}, **other).status_code == 404
    assert call(client, "DELETE", claim_path, **other).status_code == 204
    assert call(client, "DELETE", f"{MESSAGES}/{ids[1]}", **other).status_code == 204
    assert call(client, "DELETE", f"{MESSAGES}?ids={','.join(ids)}", **other).status_code == 204
    assert call(client, "DELETE", f"{MESSAGES}?pop=5", **other).json_body == {"messages": []}
    assert claim(client, **other) == (None, [])

    assert listed_ids(client, "?include_claimed=true") == ids
    assert call(client, "GET", claim_path).json_body["ttl"] == 300
    assert status_and_body(delete_message(client, ids[0])) == CLAIMED_ERROR


def test_the_same_queue_name_in_two_projects_holds_two_queues(client):
    mine = post_messages(client, [{"body": "mine"}])
    theirs = post_messages(client, [{"body": "theirs"}], project="other-project")

    assert listed_ids(client) == mine
    assert listed_ids(client, project="other-project") == theirs
    assert get_message(client, theirs[0]).status_code == 404


# -- checksum -----------------------------------------------------------------------

@pytest.fixture
def checksums_enabled(monkeypatch):
    """ENABLE_CHECKSUM=true for this test. Setting the environment variable is
    not enough: the test client applies the stage's variables (which say false)
    over the environment during each call."""
    settings = rest.get_settings
    monkeypatch.setattr(rest, "get_settings", lambda: dataclasses.replace(
        settings(), enable_checksum=True))


def test_checksum_is_md5_of_the_json_body_when_enabled(client, checksums_enabled):
    body = {"b": [1, 2.5, "três"], "a": None}
    expected = "MD5:" + hashlib.md5(json.dumps(body).encode()).hexdigest()
    first, _ = post_messages(client, [{"body": body}, {"body": body}])

    assert get_message(client, first).json_body["checksum"] == expected
    assert [m["checksum"] for m in list_messages(client)["messages"]] == [expected] * 2
    assert [m["checksum"] for m in claim(client, query="?limit=1")[1]] == [expected]
    assert [m["checksum"] for m in call(client, "DELETE", f"{MESSAGES}?pop=1")
            .json_body["messages"]] == [expected]


def test_no_checksum_by_default(client):
    [message_id] = post_messages(client, [{"body": 1}])

    assert "checksum" not in get_message(client, message_id).json_body

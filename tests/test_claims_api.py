"""The claims API against the contract (docs: /work/shared/zaqar-v2-api.md,
§3.4 and §6), through the Chalice test client on moto, with time frozen by
the `clock` fixture."""
import pytest

from conftest import PROJECT
from support.api import (
    CONSUMER,
    MESSAGES,
    NO_CLAIM_ERROR,
    call,
    claim,
    delete_message,
    error,
    get_message,
    listed_ids,
    post_messages,
    status_and_body,
)

pytestmark = pytest.mark.usefixtures("clock")

CLAIMS = "/v2/queues/q/claims"
CLAIM_TTL_ERROR = ("The TTL for a claim may not exceed 43200 seconds, "
                   "and must be at least 60 seconds long.")
GRACE_ERROR = ("The grace for a claim may not exceed 43200 seconds, "
               "and must be at least 60 seconds long.")
LIMIT_ERROR = "Limit must be at least 1 and may not be greater than 20."


def get_claim(client, claim_id, **who):
    return call(client, "GET", f"{CLAIMS}/{claim_id}", **who)


def renew(client, claim_id, body):
    return call(client, "PATCH", f"{CLAIMS}/{claim_id}", body)


def release(client, claim_id):
    return call(client, "DELETE", f"{CLAIMS}/{claim_id}")


def not_found(claim_id):
    return error(404, "Not found",
                 f"Claim {claim_id} does not exist in queue q for project {PROJECT}")


# -- create -------------------------------------------------------------------

@pytest.mark.parametrize("body", [None, "", {}], ids=["absent", "empty", "{}"])
def test_claim_defaults_to_ttl_300_and_grace_60(client, body):
    [message_id] = post_messages(client, [{"body": 1, "ttl": 60}])

    claim_id, [message] = claim(client, body)
    assert get_claim(client, claim_id).json_body["ttl"] == 300
    # A claimed message lives at least until its claim ends plus grace.
    assert message["ttl"] == 360
    assert get_message(client, message_id).json_body["ttl"] == 360


def test_claim_answers_201_with_location_and_claimed_hrefs(client, clock):
    ids = post_messages(client, [{"body": {"n": n}, "ttl": 600} for n in range(2)])
    clock.advance(4)

    response = call(client, "POST", CLAIMS, {"ttl": 120, "grace": 60})
    assert response.status_code == 201, response.body
    claim_id = response.headers["Location"].rsplit("/", 1)[1]
    assert response.headers["Location"] == f"{CLAIMS}/{claim_id}"
    assert response.json_body == {"messages": [
        {"id": message_id, "href": f"{MESSAGES}/{message_id}?claim_id={claim_id}",
         "ttl": 600, "age": 4, "body": {"n": n}} for n, message_id in enumerate(ids)]}


@pytest.mark.parametrize("body", [{"ttl": 60, "grace": 60}, {"ttl": 43200, "grace": 43200}])
def test_claim_accepts_ttl_and_grace_at_their_bounds(client, body):
    post_messages(client, [{"body": 1}])

    claim_id, _ = claim(client, body)
    assert get_claim(client, claim_id).json_body["ttl"] == body["ttl"]


@pytest.mark.parametrize("body, description", [
    ({"ttl": 59}, CLAIM_TTL_ERROR), ({"ttl": 43201}, CLAIM_TTL_ERROR),
    ({"grace": 59}, GRACE_ERROR), ({"grace": 43201}, GRACE_ERROR),
    ({"ttl": "300"}, 'The value of the "ttl" field must be a int.'),
    ({"ttl": 300.5}, 'The value of the "ttl" field must be a int.'),
    ({"ttl": None}, 'The value of the "ttl" field must be a int.'),
    ({"grace": "60"}, 'The value of the "grace" field must be a int.'),
    ([], "Document type not supported."),
    ('"fail"', "Request body could not be parsed."),
])
def test_claim_rejects_a_bad_body_and_claims_nothing(client, body, description):
    ids = post_messages(client, [{"body": 1}])

    response = call(client, "POST", CLAIMS, body)
    assert (response.status_code, response.json_body["description"]) == (400, description)
    assert listed_ids(client) == ids


@pytest.mark.parametrize("method, body", [
    ("POST", []), ("POST", {"ttl": "300"}), ("PATCH", []), ("PATCH", {"grace": "60"})])
def test_claim_body_shape_errors_are_titled_invalid_request_body(client, method, body):
    post_messages(client, [{"body": 1}])
    claim_id, _ = claim(client, {"ttl": 60})

    path = CLAIMS if method == "POST" else f"{CLAIMS}/{claim_id}"
    assert call(client, method, path, body).json_body["title"] == "Invalid request body"


@pytest.mark.parametrize("limit, expected", [
    ("0", error(400, "Invalid API request", LIMIT_ERROR)),
    ("21", error(400, "Invalid API request", LIMIT_ERROR)),
    ("many", error(400, "Invalid parameter",
                   'The "limit" parameter is invalid. The value must be an integer.')),
])
def test_claim_rejects_a_limit_out_of_range(client, limit, expected):
    ids = post_messages(client, [{"body": 1}])

    assert status_and_body(call(client, "POST", f"{CLAIMS}?limit={limit}")) == expected
    assert listed_ids(client) == ids


def test_claim_takes_10_by_default_and_up_to_20_oldest_first(client):
    ids = post_messages(client, [{"body": n} for n in range(35)])

    assert [m["id"] for m in claim(client)[1]] == ids[:10]
    assert [m["id"] for m in claim(client, query="?limit=20")[1]] == ids[10:30]
    assert [m["id"] for m in claim(client, query="?limit=1")[1]] == ids[30:31]
    assert [m["id"] for m in claim(client, query="?limit=20")[1]] == ids[31:]


@pytest.mark.parametrize("queue", ["q", "missing"])
def test_claim_with_nothing_free_is_204(client, queue):
    post_messages(client, [{"body": 1}])
    claim(client)

    response = call(client, "POST", f"/v2/queues/{queue}/claims")
    assert (response.status_code, response.body) == (204, b"")
    assert "Location" not in response.headers


def test_claims_ignore_echo(client):
    ids = post_messages(client, [{"body": 1}])

    assert [m["id"] for m in claim(client)[1]] == ids


def test_claimed_messages_are_hidden_from_the_default_listing(client):
    claimed, free = post_messages(client, [{"body": 1}, {"body": 2}])
    claim(client, query="?limit=1")

    assert listed_ids(client) == [free]
    assert listed_ids(client, "?include_claimed=true") == [claimed, free]


# -- lifetime stretching (§6.3) ---------------------------------------------------

def test_claim_stretches_a_message_that_would_expire_first(client, clock):
    [message_id] = post_messages(client, [{"body": 1, "ttl": 120}])

    claim_id, [message] = claim(client, {"ttl": 60, "grace": 60})
    assert message["ttl"] == 120  # it outlives the claim plus grace already
    clock.advance(10)
    assert renew(client, claim_id, {"ttl": 120}).status_code == 204
    assert get_message(client, message_id).json_body["ttl"] == 180
    assert get_claim(client, claim_id).json_body["messages"][0]["ttl"] == 180
    # Stretched: alive past its posted ttl until the claim ends plus grace.
    clock.advance(120)
    assert get_message(client, message_id).status_code == 200
    clock.advance(60)
    assert get_message(client, message_id).status_code == 404


def test_claim_leaves_a_message_that_outlives_it_alone(client):
    [message_id] = post_messages(client, [{"body": 1, "ttl": 3600}])

    claim(client, {"ttl": 60, "grace": 60})
    assert get_message(client, message_id).json_body["ttl"] == 3600


# -- get ------------------------------------------------------------------------------

def test_get_claim(client, clock):
    ids = post_messages(client, [{"body": n, "ttl": 600} for n in range(2)])
    claim_id, _ = claim(client, {"ttl": 100})
    clock.advance(10)

    response = get_claim(client, claim_id, client_id=CONSUMER)
    assert status_and_body(response) == (200, {
        "age": 10, "ttl": 100, "href": f"{CLAIMS}/{claim_id}",
        "messages": [{"id": message_id, "href": f"{MESSAGES}/{message_id}?claim_id={claim_id}",
                      "ttl": 600, "age": 10, "body": n}
                     for n, message_id in enumerate(ids)]})


@pytest.mark.parametrize("claim_id", ["bogus", "0123456789abcdef0123"])
def test_get_unknown_claim_is_404(client, claim_id):
    post_messages(client, [{"body": 1}])
    claim(client)

    assert status_and_body(get_claim(client, claim_id)) == not_found(claim_id)


def test_get_expired_claim_is_404(client, clock):
    post_messages(client, [{"body": 1}])
    claim_id, _ = claim(client, {"ttl": 60})
    clock.advance(59)
    assert get_claim(client, claim_id).status_code == 200

    clock.advance(1)
    assert status_and_body(get_claim(client, claim_id)) == not_found(claim_id)


def test_claim_whose_messages_are_all_deleted_is_still_there_and_empty(client):
    ids = post_messages(client, [{"body": 1}, {"body": 2}])
    claim_id, _ = claim(client)
    for message_id in ids:
        assert delete_message(client, message_id, claim_id).status_code == 204

    response = get_claim(client, claim_id)
    assert response.status_code == 200
    assert response.json_body["messages"] == []


# -- renew ------------------------------------------------------------------------------

def test_renew_restarts_the_claim(client, clock):
    [message_id] = post_messages(client, [{"body": 1}])
    claim_id, _ = claim(client, {"ttl": 60})
    clock.advance(50)

    response = renew(client, claim_id, {"ttl": 100})
    assert (response.status_code, response.body) == (204, b"")
    assert {key: value for key, value in get_claim(client, claim_id).json_body.items()
            if key in ("age", "ttl")} == {"age": 0, "ttl": 100}
    clock.advance(99)
    assert claim(client) == (None, [])
    assert delete_message(client, message_id, claim_id).status_code == 204


def test_a_renewed_claim_frees_its_messages_when_the_renewal_ends(client, clock):
    [message_id] = post_messages(client, [{"body": 1}])
    claim_id, _ = claim(client, {"ttl": 60})
    clock.advance(50)
    renew(client, claim_id, {"ttl": 100})

    clock.advance(10)  # past the first expiry: still held
    assert claim(client) == (None, [])
    assert listed_ids(client) == []
    clock.advance(90)
    assert listed_ids(client) == [message_id]
    assert [m["id"] for m in claim(client)[1]] == [message_id]


def test_renew_with_an_empty_object_takes_the_defaults(client):
    post_messages(client, [{"body": 1}])
    claim_id, _ = claim(client, {"ttl": 60})

    assert renew(client, claim_id, {}).status_code == 204
    assert get_claim(client, claim_id).json_body["ttl"] == 300


def test_renew_needs_a_body(client):
    post_messages(client, [{"body": 1}])
    claim_id, _ = claim(client, {"ttl": 60})

    assert status_and_body(renew(client, claim_id, None)) == error(
        400, "Invalid request body", "Request body can not be empty")
    assert get_claim(client, claim_id).json_body["ttl"] == 60


@pytest.mark.parametrize("body, description", [
    ({"ttl": 59}, CLAIM_TTL_ERROR), ({"ttl": 43201}, CLAIM_TTL_ERROR),
    ({"ttl": "100"}, 'The value of the "ttl" field must be a int.'),
    ({"grace": "60"}, 'The value of the "grace" field must be a int.'),
    ([], "Document type not supported."),
])
def test_renew_rejects_a_bad_body_and_changes_nothing(client, body, description):
    post_messages(client, [{"body": 1}])
    claim_id, _ = claim(client, {"ttl": 60})

    response = renew(client, claim_id, body)
    assert (response.status_code, response.json_body["description"]) == (400, description)
    assert get_claim(client, claim_id).json_body["ttl"] == 60


@pytest.mark.parametrize("grace", [0, 43201])
def test_renew_does_not_range_check_grace(client, grace):
    post_messages(client, [{"body": 1}])
    claim_id, _ = claim(client, {"ttl": 60})

    assert renew(client, claim_id, {"ttl": 120, "grace": grace}).status_code == 204
    assert get_claim(client, claim_id).json_body["ttl"] == 120


def test_renew_of_an_unknown_or_expired_claim_is_404(client, clock):
    post_messages(client, [{"body": 1}])
    claim_id, _ = claim(client, {"ttl": 60})
    unknown = "0123456789abcdef0123"

    assert status_and_body(renew(client, unknown, {"ttl": 60})) == not_found(unknown)
    clock.advance(60)
    assert status_and_body(renew(client, claim_id, {"ttl": 60})) == not_found(claim_id)
    assert get_claim(client, claim_id).status_code == 404


# -- release ----------------------------------------------------------------------------

@pytest.mark.parametrize("claim_id", ["bogus", "0123456789abcdef0123"])
def test_release_of_an_unknown_claim_is_204(client, claim_id):
    response = release(client, claim_id)

    assert (response.status_code, response.body) == (204, b"")


def test_release_frees_the_messages_at_once(client):
    ids = post_messages(client, [{"body": n} for n in range(3)])
    claim_id, _ = claim(client, query="?limit=2")

    assert release(client, claim_id).status_code == 204
    assert get_claim(client, claim_id).status_code == 404
    assert listed_ids(client) == ids
    assert [m["id"] for m in claim(client)[1]] == ids


def test_a_released_claim_no_longer_deletes(client):
    [message_id] = post_messages(client, [{"body": 1}])
    claim_id, _ = claim(client)
    release(client, claim_id)

    assert status_and_body(delete_message(client, message_id, claim_id)) == NO_CLAIM_ERROR
    assert get_message(client, message_id).status_code == 200


# -- expiry -----------------------------------------------------------------------------

def test_an_expired_claim_frees_its_messages_without_a_sweep(client, clock):
    ids = post_messages(client, [{"body": n} for n in range(2)])
    old_claim, _ = claim(client, {"ttl": 60})
    clock.advance(59)
    assert claim(client) == (None, [])

    clock.advance(1)
    assert listed_ids(client) == ids
    new_claim, taken = claim(client)
    assert [m["id"] for m in taken] == ids
    assert status_and_body(delete_message(client, ids[0], old_claim)) == NO_CLAIM_ERROR
    assert delete_message(client, ids[0], new_claim).status_code == 204


def test_an_expired_claim_no_longer_deletes_even_if_nobody_reclaimed(client, clock):
    [message_id] = post_messages(client, [{"body": 1}])
    claim_id, _ = claim(client, {"ttl": 60})
    clock.advance(60)

    assert status_and_body(delete_message(client, message_id, claim_id)) == NO_CLAIM_ERROR
    assert get_message(client, message_id).status_code == 200
    # Without a claim id it goes: nothing holds it any more.
    assert call(client, "DELETE", f"{MESSAGES}/{message_id}").status_code == 204


def test_claims_interleaved_with_expiry_and_release_keep_fifo(client, clock):
    ids = post_messages(client, [{"body": n} for n in range(6)])
    claim(client, {"ttl": 60}, "?limit=2")
    second, _ = claim(client, {"ttl": 120}, "?limit=2")
    release(client, second)
    clock.advance(60)

    assert listed_ids(client) == ids
    assert [m["id"] for m in claim(client, query="?limit=20")[1]] == ids

"""The queue routes and the request checks in front of them, as Zaqar's v2
API answers (contract §1.3, §3.2, §4). Every refused request is also shown to
have changed nothing."""
import json
from urllib.parse import parse_qs, urlsplit

import moto
import pytest

from chalicelib.storage.models import ALL_MODELS
from conftest import PROJECT, headers
from local.tables import create_tables

PATCH_TYPE = "application/openstack-messaging-v2.0-json-patch"
DEFAULTS = {
    "_max_messages_post_size": 262144, "_default_message_ttl": 3600,
    "_default_message_delay": 0, "_dead_letter_queue": None,
    "_dead_letter_queue_messages_ttl": None, "_max_claim_count": None,
    "_enable_encrypt_messages": False}
BAD_NAME = {"title": "Invalid queue identification",
            "description": "The format of the submitted queue name or project id is not valid."}


@pytest.fixture(scope="module")
def aws():
    """One mocked AWS for the module, since creating the tables is most of a
    test's cost; each test leaves the tables empty instead."""
    with moto.mock_aws():
        create_tables()
        yield


@pytest.fixture(autouse=True)
def empty_tables(aws):
    yield
    for model in ALL_MODELS:
        with model.batch_write() as batch:
            for item in model.scan():
                batch.delete(item)


def body_error(description):
    return {"title": "Invalid request body", "description": description}


def api_error(description):
    return {"title": "Invalid API request", "description": description}


def put(client, name, metadata=None, project=PROJECT, **extra):
    body = None if metadata is None else json.dumps(metadata)
    return client.http.put(f"/v2/queues/{name}", headers=headers(project, **extra),
                           body=body)


def patch(client, name, operations, project=PROJECT, content_type=PATCH_TYPE):
    body = operations if isinstance(operations, str) else json.dumps(operations)
    return client.http.patch(f"/v2/queues/{name}", body=body,
                             headers=headers(project, Content_Type=content_type))


def metadata_of(client, name, project=PROJECT):
    response = client.http.get(f"/v2/queues/{name}", headers=headers(project))
    assert response.status_code == 200
    return response.json_body


def listing(client, query="", project=PROJECT):
    response = client.http.get(f"/v2/queues{query}", headers=headers(project))
    assert response.status_code == 200, response.body
    return response.json_body


def names(client, query="", project=PROJECT):
    return [queue["name"] for queue in listing(client, query, project)["queues"]]


def assert_error(response, status, body):
    assert (response.status_code, response.json_body) == (status, body)


# -- request checks, in Zaqar's order ----------------------------------------

ALL_WRONG = {"Content-Type": "application/x-www-form-urlencoded",
             "Accept": "application/xml"}
# Each step: the headers that fix the check before it, then the status and
# title of the check that fails next.
REQUEST_CHECKS = [
    ({}, 400, "Invalid Content-Type"),
    ({"Content-Type": "application/json"}, 406, "406 Not Acceptable"),
    ({"Accept": "application/json"}, 400, "Missing header value"),
    ({"Client-ID": "3381af92-2b9e-11e3-b191-71861300734c"}, 400, "Project-Id Missing"),
    ({"X-Project-ID": PROJECT}, 400, "Invalid queue identification"),
]


@pytest.mark.parametrize("step", range(len(REQUEST_CHECKS)))
def test_request_checks_run_in_order(client, step):
    request_headers = dict(ALL_WRONG)
    for fix, _, _ in REQUEST_CHECKS[:step + 1]:
        request_headers.update(fix)
    response = client.http.put("/v2/queues/bad*name", headers=request_headers,
                               body="a=1")
    _, status, title = REQUEST_CHECKS[step]
    assert (response.status_code, response.json_body["title"]) == (status, title)
    assert names(client) == []


def test_form_encoded_body_is_refused(client):
    response = client.http.put(
        "/v2/queues/q1", body="a=1",
        headers=headers(Content_Type="application/x-www-form-urlencoded"))
    assert_error(response, 400, {
        "title": "Invalid Content-Type",
        "description": "Endpoint does not accept `application/x-www-form-urlencoded` "
                       "content; currently supported media type is `application/json`; "
                       'specify proper client-side media type with the "Content-Type" '
                       "header."})
    assert names(client) == []


@pytest.mark.parametrize("accept", ["*/*", "application/json", "application/*",
                                    "text/html, application/json;q=0.9"])
def test_json_accepting_clients_are_served(client, accept):
    assert put(client, "q1", Accept=accept).status_code == 201


@pytest.mark.parametrize("accept", ["application/xml", "text/plain"])
def test_other_media_types_get_406(client, accept):
    response = put(client, "q1", Accept=accept)
    assert response.status_code == 406
    assert response.json_body["title"] == "406 Not Acceptable"
    assert "application/json" in response.json_body["description"]
    assert response.json_body["link"]["rel"] == "help"
    assert names(client) == []


@pytest.mark.parametrize("client_id", [
    "3381af92-2b9e-11e3-b191-71861300734c", "3381af922b9e11e3b19171861300734c",
    "{3381af92-2b9e-11e3-b191-71861300734c}",
    "urn:uuid:3381af92-2b9e-11e3-b191-71861300734c"])
def test_client_id_forms_python_accepts(client, client_id):
    assert put(client, "q1", Client_ID=client_id).status_code == 201


@pytest.mark.parametrize("client_id", ["", "not-a-uuid", "3381af92-2b9e-11e3-b191-71861300734",
                                       "3381af92-2b9e-11e3-b191-71861300734g"])
def test_malformed_client_id(client, client_id):
    response = put(client, "q1", Client_ID=client_id)
    assert_error(response, 400, {"title": "Wrong UUID value",
                                 "description": "Malformed hexadecimal UUID."})
    assert names(client) == []


def test_client_id_missing(client):
    response = client.http.put("/v2/queues/q1", headers={"X-Project-ID": PROJECT})
    assert_error(response, 400, {"title": "Missing header value",
                                 "description": 'The "Client-Id" header is required.'})
    assert names(client) == []


@pytest.mark.parametrize("project,body", [
    (None, {"title": "Project-Id Missing",
            "description": "The header X-PROJECT-ID was missing"}),
    ("", {"title": "Empty project header not allowed"}),
    ("p" * 257, BAD_NAME)])
def test_bad_project_header(client, project, body):
    request_headers = headers()
    if project is None:
        del request_headers["X-Project-ID"]
    else:
        request_headers["X-Project-ID"] = project
    assert_error(client.http.put("/v2/queues/q1", headers=request_headers), 400, body)
    assert names(client) == []


def test_longest_project_is_accepted(client):
    assert put(client, "q1", project="p" * 256).status_code == 201
    assert names(client, project="p" * 256) == ["q1"]


@pytest.mark.parametrize("alias", ["X-Tenant-Id", "X-Tenant"])
def test_legacy_project_headers(client, alias):
    request_headers = {"Client-ID": headers()["Client-ID"], alias: "legacy"}
    assert client.http.put("/v2/queues/q1", headers=request_headers).status_code == 201
    assert names(client, project="legacy") == ["q1"]
    assert names(client) == []


@pytest.mark.parametrize("name", ["a.b", "A-z_0.9", "q" * 64])
def test_queue_names_zaqar_accepts(client, name):
    assert put(client, name).status_code == 201
    assert names(client) == [name]


@pytest.mark.parametrize("name", ["q" * 65, "é", "%C3%A9", "a*b", "a%20b"])
def test_queue_names_zaqar_rejects(client, name):
    for method in ("PUT", "GET", "PATCH", "DELETE"):
        response = client.http.request(method, f"/v2/queues/{name}", body="[]",
                                       headers=headers(Content_Type=PATCH_TYPE))
        assert_error(response, 400, BAD_NAME)
    assert names(client) == []


# -- create, get, delete ------------------------------------------------------

def test_create_then_create_again_keeps_metadata(client):
    created = put(client, "q1", {"color": "blue"})
    assert (created.status_code, created.body) == (201, b"")
    assert created.headers["Location"] == "/v2/queues/q1"
    again = put(client, "q1", {"color": "red", "_default_message_ttl": 60})
    assert again.status_code == 204
    assert again.headers["Location"] == "/v2/queues/q1"
    assert metadata_of(client, "q1") == dict(DEFAULTS, color="blue")


def test_create_without_body(client):
    assert put(client, "q1").status_code == 201
    assert metadata_of(client, "q1") == DEFAULTS


def test_get_missing_queue_shows_defaults(client):
    assert metadata_of(client, "nope") == DEFAULTS
    assert names(client) == []


def test_delete(client):
    put(client, "q1", {"color": "blue"})
    put(client, "q2")
    response = client.http.delete("/v2/queues/q1", headers=headers())
    assert (response.status_code, response.body) == (204, b"")
    assert names(client) == ["q2"]
    assert metadata_of(client, "q1") == DEFAULTS
    assert client.http.delete("/v2/queues/q1", headers=headers()).status_code == 204


VALID_RESERVED = {
    "_max_messages_post_size": 1024, "_default_message_ttl": 60,
    "_default_message_delay": 900, "_dead_letter_queue": "dlq.1",
    "_dead_letter_queue_messages_ttl": 1209600, "_max_claim_count": 5,
    "_enable_encrypt_messages": True, "_flavor": "gold",
    "_retry_policy": {"retries_with_no_delay": 2, "minimum_delay_retries": 1,
                      "minimum_delay": 5, "maximum_delay": 15,
                      "maximum_delay_retries": 2, "retry_backoff_function": "geometric",
                      "ignore_subscription_override": True}}


def test_valid_reserved_values_are_kept(client):
    assert put(client, "q1", dict(VALID_RESERVED, free=[1, {"x": None}])).status_code == 201
    assert metadata_of(client, "q1") == dict(VALID_RESERVED, free=[1, {"x": None}])


@pytest.mark.parametrize("falsy", [0, False, "", None, [], {}])
def test_falsy_reserved_values_mean_unset(client, falsy):
    assert put(client, "q1", {key: falsy for key in VALID_RESERVED}).status_code == 201
    assert metadata_of(client, "q1") == {key: DEFAULTS.get(key, falsy)
                                         for key in VALID_RESERVED}


def test_falsy_policy_fields_are_unset(client):
    policy = {"minimum_delay": 0, "maximum_delay": None, "retry_backoff_function": ""}
    assert put(client, "q1", {"_retry_policy": policy}).status_code == 201


BAD_RESERVED = [
    ({"_default_message_ttl": "60"}, "_default_message_ttl must be integer."),
    ({"_default_message_ttl": 60.0}, "_default_message_ttl must be integer."),
    ({"_default_message_ttl": 59}, "_default_message_ttl can not exceed 1209600 "
                                   "seconds, and must be at least 60 seconds long."),
    ({"_default_message_ttl": 1209601}, "_default_message_ttl can not exceed 1209600 "
                                        "seconds, and must be at least 60 seconds long."),
    ({"_max_messages_post_size": "1"}, "_max_messages_post_size must be integer."),
    ({"_max_messages_post_size": -1}, "_max_messages_post_size can not exceed 262144, "
                                      "and must be at least greater than 0."),
    ({"_max_messages_post_size": 262145}, "_max_messages_post_size can not exceed "
                                          "262144, and must be at least greater than 0."),
    ({"_default_message_delay": "5"}, "_default_message_delay must be integer."),
    ({"_default_message_delay": -1}, "The TTL can not exceed 900 seconds, and must be "
                                     "at least 0 seconds long."),
    ({"_default_message_delay": 901}, "The TTL can not exceed 900 seconds, and must be "
                                      "at least 0 seconds long."),
    ({"_dead_letter_queue_messages_ttl": "x"},
     "_dead_letter_queue_messages_ttl must be integer."),
    ({"_dead_letter_queue_messages_ttl": 59}, "The TTL for a message may not exceed "
                                              "1209600 seconds, and must be at least 60 "
                                              "seconds long."),
    ({"_dead_letter_queue": "no/such queue"}, "_dead_letter_queue must be a queue name."),
    ({"_max_claim_count": "3"}, "_max_claim_count must be integer."),
    ({"_max_claim_count": True}, "_max_claim_count must be integer."),
    ({"_enable_encrypt_messages": "yes"}, "_enable_encrypt_messages must be boolean."),
    ({"_enable_encrypt_messages": 1}, "_enable_encrypt_messages must be boolean."),
    ({"_flavor": 3}, "_flavor must be a string."),
    ({"_retry_policy": "fast"}, "_retry_policy must be a dict."),
    ({"_retry_policy": {"minimum_delay": "5"}},
     "Retry policy: minimum_delay must be a integer."),
    ({"_retry_policy": {"retry_backoff_function": 1}},
     "retry_backoff_function must be a string."),
    ({"_retry_policy": {"retry_backoff_function": "cubic"}},
     "invalid retry_backoff_function."),
    ({"_retry_policy": {"ignore_subscription_override": "yes"}},
     "ignore_subscription_override must be a boolean."),
    ({"_retry_policy": {"minimum_delay": 30, "maximum_delay": 20}},
     "minimum_delay must less than maximum_delay."),
    ({"_retry_policy": {"minimum_delay": 25}}, "invalid minimum_delay and maximum_delay."),
]


@pytest.mark.parametrize("metadata,description", BAD_RESERVED)
def test_bad_reserved_values_are_refused_by_create_and_patch(client, metadata,
                                                             description):
    assert_error(put(client, "q1", metadata), 400, api_error(description))
    assert names(client) == []
    # A patch is checked on its result, and its failures are body errors.
    put(client, "q1", {"color": "blue"})
    [(key, value)] = metadata.items()
    response = patch(client, "q1", [{"op": "add", "path": f"/metadata/{key}", "value": value}])
    assert_error(response, 400, body_error(description))
    assert metadata_of(client, "q1") == dict(DEFAULTS, color="blue")


@pytest.mark.parametrize("raw,description", [
    ("[]", "Document type not supported."),
    ('[{"a": 1}]', "Document type not supported."),
    ("{", "Request body could not be parsed."),
    ('"text"', "Request body could not be parsed."),
    ("  ", "Request body could not be parsed."),
    ('{"a": 9223372036854775808}', "JSON contains integer that is too large."),
    ('{"a": -9223372036854775809}', "JSON contains integer that is too large."),
])
def test_create_refuses_bad_bodies(client, raw, description):
    response = client.http.put("/v2/queues/q1", headers=headers(), body=raw)
    assert_error(response, 400, body_error(description))
    assert names(client) == []


def test_int64_bounds_are_accepted(client):
    body = '{"big": 9223372036854775807, "small": -9223372036854775808}'
    assert client.http.put("/v2/queues/q1", headers=headers(), body=body).status_code == 201
    assert metadata_of(client, "q1")["big"] == 2 ** 63 - 1


def _metadata_of_size(size):
    document = '{"pad": ""}'
    return document.replace('""', '"' + "x" * (size - len(document)) + '"')


def test_metadata_size_limit(client):
    too_large = _metadata_of_size(65537)
    response = client.http.put("/v2/queues/q1", headers=headers(), body=too_large)
    assert_error(response, 400, api_error("Queue metadata is too large. Max size: 65536"))
    assert names(client) == []
    largest = _metadata_of_size(65536)
    assert client.http.put("/v2/queues/q1", headers=headers(), body=largest).status_code == 201


# -- patch --------------------------------------------------------------------

@pytest.mark.parametrize("content_type", [
    None, "application/json", f"{PATCH_TYPE}; charset=utf-8",
    "application/json-patch+json", PATCH_TYPE.upper()])
def test_patch_needs_its_media_type(client, content_type):
    put(client, "q1", {"color": "blue"})
    request_headers = headers()
    if content_type:
        request_headers["Content-Type"] = content_type
    response = client.http.patch(
        "/v2/queues/q1", headers=request_headers,
        body=json.dumps([{"op": "add", "path": "/metadata/color", "value": "red"}]))
    assert_error(response, 415, {
        "title": "415 Unsupported Media Type",
        "description": "Accepted media type for PATCH: "
                       "{'Accept-Patch': 'application/openstack-messaging-v2.0-json-patch'}"})
    assert metadata_of(client, "q1") == dict(DEFAULTS, color="blue")


@pytest.mark.parametrize("operations,description", [
    ("", "PATCH body could not be empty for update."),
    ("[", "Request body could not be parsed."),
    ({"op": "add"}, "Request body must be a JSON array of operation objects."),
    ([1], "Operations must be JSON objects."),
    ([{"path": "/metadata/a", "value": 1}], "Unable to find `op` in JSON Schema change. "
                                            "It must be one of the following: add, "
                                            "remove, replace."),
    ([{"op": "move", "path": "/metadata/a", "from": "/metadata/b"}],
     "Invalid operation: `move`. It must be one of the following: add, remove, replace."),
    ([{"op": "add", "value": 1}], "Unable to find 'path' in JSON Schema change"),
    ([{"op": "add", "path": "/metadata", "value": 1}],
     "Invalid JSON pointer for this resource: '/metadata, e.g /metadata/key'"),
    ([{"op": "remove", "path": "/metadata/a/b"}],
     "Invalid JSON pointer for this resource: '/metadata/a/b, e.g /metadata/key'"),
    ([{"op": "add", "path": "metadata/a", "value": 1}],
     "Invalid JSON pointer for this resource: 'metadata/a, e.g /metadata/key'"),
    ([{"op": "add", "path": "/metadata/a~2", "value": 1}],
     "Invalid JSON pointer for this resource: '/metadata/a~2, e.g /metadata/key'"),
    ([{"op": "replace", "path": "/metadata/color"}],
     'Operation "replace" requires a member named "value".'),
    ([{"op": "add", "path": "/meta/color", "value": 1}],
     "The root of path must be metadata, e.g /metadata/key."),
    ([{"op": "add", "path": "/metadata/shape", "value": 1},
      {"op": "replace", "path": "/other/color", "value": 1}],
     "The root of path must be metadata, e.g /metadata/key."),
])
def test_patch_refuses_bad_documents(client, operations, description):
    put(client, "q1", {"color": "blue"})
    assert_error(patch(client, "q1", operations), 400, body_error(description))
    assert metadata_of(client, "q1") == dict(DEFAULTS, color="blue")


def test_patch_operations(client):
    put(client, "q1", {"color": "blue", "size": 1, "gone": True})
    response = patch(client, "q1", [
        {"op": "add", "path": "/metadata/shape", "value": {"sides": 3}},
        {"op": "add", "path": "/metadata/size", "value": 2},
        {"op": "replace", "path": "/metadata/color", "value": "red"},
        {"op": "replace", "path": "/metadata/_default_message_ttl", "value": 120},
        {"op": "remove", "path": "/metadata/gone"},
        {"op": "remove", "path": "/metadata/_max_claim_count"},
        {"op": "add", "path": "/METADATA/a~1b~0c", "value": None},
    ])
    expected = dict(DEFAULTS, color="red", size=2, shape={"sides": 3},
                    _default_message_ttl=120, **{"a/b~c": None})
    assert (response.status_code, response.json_body) == (200, expected)
    assert metadata_of(client, "q1") == expected


def test_patch_remove_ignores_the_root(client):
    put(client, "q1", {"color": "blue"})
    assert patch(client, "q1", [{"op": "remove", "path": "/any/color"}]).status_code == 200
    assert metadata_of(client, "q1") == DEFAULTS


def test_empty_patch_changes_nothing(client):
    put(client, "q1", {"color": "blue"})
    response = patch(client, "q1", [])
    assert (response.status_code, response.json_body) == (200, dict(DEFAULTS, color="blue"))


@pytest.mark.parametrize("op,description", [
    ("replace", "Can't replace non-existent object nope."),
    ("remove", "Can't remove non-existent object nope."),
])
def test_patch_conflicts_on_absent_keys(client, op, description):
    put(client, "q1", {"color": "blue"})
    response = patch(client, "q1", [
        {"op": "add", "path": "/metadata/color", "value": "red"},
        {"op": op, "path": "/metadata/nope", "value": 1}])
    assert_error(response, 409, {"title": "Resource conflict", "description": description})
    assert metadata_of(client, "q1") == dict(DEFAULTS, color="blue")


def test_patch_missing_queue(client):
    response = patch(client, "nope", [{"op": "add", "path": "/metadata/a", "value": 1}])
    assert_error(response, 404, {
        "title": "Not found",
        "description": f"Queue nope does not exist for project {PROJECT}"})
    assert names(client) == []


def test_patch_size_limit(client):
    put(client, "q1", {"color": "blue"})
    operations = json.dumps([{"op": "add", "path": "/metadata/pad", "value": "x" * 65536}])
    response = patch(client, "q1", operations)
    assert_error(response, 400, api_error("Queue metadata is too large. Max size: 65536"))
    assert metadata_of(client, "q1") == dict(DEFAULTS, color="blue")


# -- list ---------------------------------------------------------------------

@pytest.mark.parametrize("limit", ["0", "-1", "21"])
def test_list_limit_out_of_range(client, limit):
    response = client.http.get(f"/v2/queues?limit={limit}", headers=headers())
    assert_error(response, 400, api_error("Limit must be at least 1 and no greater than 20."))


@pytest.mark.parametrize("query,description", [
    ("limit=ten", 'The "limit" parameter is invalid. The value must be an integer.'),
    ("detailed=maybe", 'The "detailed" parameter is invalid. '
                       'The value of the parameter must be "true" or "false".'),
    ("with_count=2", 'The "with_count" parameter is invalid. '
                     'The value of the parameter must be "true" or "false".'),
])
def test_list_parameter_types(client, query, description):
    response = client.http.get(f"/v2/queues?{query}", headers=headers())
    assert_error(response, 400, {"title": "Invalid parameter", "description": description})


def test_list_limits(client):
    for number in range(21):
        put(client, f"q{number:02}")
    assert names(client) == [f"q{number:02}" for number in range(10)]
    assert len(names(client, "?limit=20")) == 20
    assert names(client, "?limit=1") == ["q00"]


def test_list_pages_by_marker(client):
    for name in ("b", "a", "d", "c", "e"):
        put(client, name)
    pages, query = [], "?limit=2"
    while True:
        page = listing(client, query)
        pages.append([queue["name"] for queue in page["queues"]])
        if not page["queues"]:
            assert page["links"] == []
            break
        [link] = page["links"]
        assert link["rel"] == "next"
        query = "?" + urlsplit(link["href"]).query
    assert pages == [["a", "b"], ["c", "d"], ["e"], []]


def test_list_entries(client):
    put(client, "q1", {"color": "blue", "_default_message_ttl": 60})
    plain = listing(client)
    assert plain["queues"] == [{"name": "q1", "href": "/v2/queues/q1"}]
    assert "count" not in plain
    detailed = listing(client, "?detailed=true")
    assert detailed["queues"] == [{
        "name": "q1", "href": "/v2/queues/q1",
        "metadata": dict(DEFAULTS, color="blue", _default_message_ttl=60)}]


def test_next_link_repeats_list_parameters_only(client):
    put(client, "queue-1", {"node": 1})
    page = listing(client, "?limit=05&detailed=True&name=queue&with_count=yes&node=1")
    [link] = page["links"]
    href = urlsplit(link["href"])
    assert href.path == "/v2/queues"
    assert parse_qs(href.query) == {
        "limit": ["5"], "detailed": ["true"], "name": ["queue"],
        "with_count": ["true"], "marker": ["queue-1"]}


def test_next_link_without_parameters_has_the_marker_only(client):
    put(client, "q1")
    assert listing(client)["links"] == [{"rel": "next", "href": "/v2/queues?marker=q1"}]


def test_list_count(client):
    for name in ("q1", "q2", "other"):
        put(client, name)
    page = listing(client, "?with_count=true&limit=1&name=q")
    assert (len(page["queues"]), page["count"]) == (1, 3)
    assert "count" not in listing(client, "?with_count=true", project="empty")


def test_list_name_filter(client):
    for name in ("alpha", "alphabet", "beta", "Alpha"):
        put(client, name)
    assert names(client, "?name=alpha") == ["alpha", "alphabet"]
    assert names(client, "?name=ta") == ["beta"]
    assert names(client, "?name=zzz") == []


def test_list_metadata_filters(client):
    put(client, "int31", {"node": 31, "color": "blue"})
    put(client, "text31", {"node": "31", "color": "blue"})
    put(client, "red", {"node": 31, "color": "red"})
    put(client, "none")
    assert names(client, "?node=31") == ["int31", "red"]
    assert names(client, "?color=blue") == ["int31", "text31"]
    assert names(client, "?node=31&color=blue") == ["int31"]
    assert names(client, "?node=32") == []


def test_list_is_empty_but_200(client):
    assert listing(client) == {"queues": [], "links": []}


# -- projects -----------------------------------------------------------------

def test_projects_do_not_see_or_touch_each_other(client):
    put(client, "q1", {"color": "blue"})
    assert names(client, project="other") == []
    assert metadata_of(client, "q1", project="other") == DEFAULTS
    response = patch(client, "q1", [{"op": "add", "path": "/metadata/a", "value": 1}],
                     project="other")
    assert response.status_code == 404
    deleted = client.http.delete("/v2/queues/q1", headers=headers("other"))
    assert deleted.status_code == 204
    assert put(client, "q1", {"color": "red"}, project="other").status_code == 201
    assert names(client) == ["q1"]
    assert metadata_of(client, "q1") == dict(DEFAULTS, color="blue")
    assert metadata_of(client, "q1", project="other") == dict(DEFAULTS, color="red")

"""Versions, home document, ping and health; and what every route shares:
405 and OPTIONS, the request id, and the answers to storage failures."""
import contextlib
import dataclasses
import re

import pytest
from botocore.exceptions import ClientError
from chalice.local import LambdaContext, LambdaEventConverter, RouteMatcher

from chalicelib import config, rest
from chalicelib.storage import retry
from chalicelib.storage.models import QueueRecord
from conftest import headers

PUBLIC_RELATIONS = {
    "queues", "queue", "queue_stats", "queue_share", "queue_purge", "messages",
    "post_messages", "messages_delete", "message_delete", "message_get", "claim",
    "post_claim", "patch_claim", "delete_claim", "subscriptions_get",
    "subscriptions_post", "subscription", "subscription_patch", "ping"}
ADMIN_RELATIONS = {"pools", "pool", "flavors", "flavor", "health"}
REQUEST_ID = re.compile(r"req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
UNAVAILABLE = {"title": "Service temporarily unavailable",
               "description": "The backend did not answer in time."
                              " Please try again in a few seconds."}
QUEUE_ALLOW = "DELETE, GET, PATCH, PUT, OPTIONS"


@pytest.fixture
def prod_client(client, monkeypatch):
    """Admin mode off, as on the prod stage. (The prod stage itself needs a
    Keystone; the test client sets the dev stage's variables during each
    request, so the settings are replaced where they are read.)"""
    stage_settings = config.get_settings
    monkeypatch.setattr(rest, "get_settings", lambda: dataclasses.replace(
        stage_settings(), admin_mode=False))
    return client


@contextlib.contextmanager
def storage_failing(code, monkeypatch):
    """Every queues-table call fails with the DynamoDB error `code`; retries
    do not wait."""
    monkeypatch.setattr(retry, "backoff", lambda attempt: 0)
    events = QueueRecord._get_connection().connection.client.meta.events

    def fail(model, **_):
        raise ClientError({"Error": {"Code": code, "Message": "simulated"}}, model.name)

    events.register("before-call.dynamodb", fail)
    try:
        yield
    finally:
        events.unregister("before-call.dynamodb", fail)


def invoke(app, method, path, request_headers):
    """Call the app as API Gateway would; the test client cannot send OPTIONS."""
    converter = LambdaEventConverter(RouteMatcher(list(app.routes)))
    event = converter.create_lambda_event(method, path, request_headers)
    return app(event, LambdaContext("api_handler", 128))


def test_versions_need_no_headers(client):
    response = client.http.get("/")
    assert response.status_code == 300
    assert response.json_body == {"versions": [{
        "id": "2", "status": "CURRENT", "updated": "2014-9-24T04:06:47Z",
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.messaging-v2+json"}],
        "links": [{"href": "/v2/", "rel": "self"}]}]}


def test_home_document_in_admin_mode(client):
    response = client.http.get("/v2/", headers=headers())
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json-home"
    assert response.headers["Cache-Control"] == "max-age=86400"
    resources = response.json_body["resources"]
    assert set(resources) == {f"rel/{name}" for name in PUBLIC_RELATIONS | ADMIN_RELATIONS}
    assert resources["rel/queues"]["href-template"] == "/v2/queues{?marker,limit,detailed}"
    assert resources["rel/health"]["href"] == "/v2/health"
    for resource in resources.values():
        assert ("href" in resource) != ("href-template" in resource)
        assert resource["hints"]["allow"]


def test_home_document_without_admin_mode(prod_client):
    response = prod_client.http.get("/v2/", headers=headers())
    assert response.status_code == 200
    assert set(response.json_body["resources"]) == {
        f"rel/{name}" for name in PUBLIC_RELATIONS}


def test_home_document_needs_the_trailing_slash(client):
    response = client.http.get("/v2", headers=headers())
    assert (response.status_code, response.json_body) == (404, {"title": "404 Not Found"})


@pytest.mark.parametrize("method", ["get", "head"])
def test_ping(client, method):
    response = getattr(client.http, method)("/v2/ping", headers=headers())
    assert (response.status_code, response.body) == (204, b"")


@pytest.mark.parametrize("path", ["/v2/ping", "/v2/health", "/v2/"])
def test_client_id_is_required_beyond_the_versions(client, path):
    response = client.http.get(path, headers={"X-Project-ID": "p", "X-Roles": "admin"})
    assert response.status_code == 400
    assert response.json_body == {"title": "Missing header value",
                                  "description": 'The "Client-Id" header is required.'}


@pytest.mark.parametrize("roles", ["admin", "member,admin", " admin "])
def test_health_for_admins(client, roles):
    response = client.http.get("/v2/health", headers=headers(X_Roles=roles))
    assert response.status_code == 200
    report = response.json_body
    assert report["storage_reachable"] is True
    assert set(report["operation_status"]) == {
        "create_queue", "post_messages", "claim_messages", "list_messages",
        "delete_messages", "delete_claim", "bulk_delete_messages", "delete_queue"}
    for step in report["operation_status"].values():
        assert step["succeeded"] is True and step["ref"] is None
        assert step["seconds"] >= 0
    # Its throw-away queue lives in no real project.
    listed = client.http.get("/v2/queues", headers=headers()).json_body
    assert listed["queues"] == []


@pytest.mark.parametrize("extra", [{}, {"X_Roles": "member"}, {"X_Roles": "administrator"}])
def test_health_refuses_non_admins(client, extra):
    response = client.http.get("/v2/health", headers=headers(**extra))
    assert response.status_code == 403
    assert response.json_body == {
        "title": "Not authorized",
        "description": "You are not authorized to complete this action."}


def test_health_is_absent_without_admin_mode(prod_client):
    response = prod_client.http.get("/v2/health", headers=headers(X_Roles="admin"))
    assert (response.status_code, response.json_body) == (404, {"title": "404 Not Found"})


METHOD_NOT_ALLOWED = [
    ("POST", "/", "GET, OPTIONS"),
    ("DELETE", "/v2/", "GET, OPTIONS"),
    ("POST", "/v2/ping", "GET, HEAD, OPTIONS"),
    ("HEAD", "/v2/health", "GET, OPTIONS"),
    ("PUT", "/v2/queues", "GET, OPTIONS"),
    ("POST", "/v2/queues/q1", QUEUE_ALLOW),
    ("HEAD", "/v2/queues/q1", QUEUE_ALLOW),
]


@pytest.mark.parametrize("method,path,allow", METHOD_NOT_ALLOWED)
def test_wrong_method_gets_405_with_allow(client, method, path, allow):
    response = client.http.request(method, path, headers=headers(), body=b"{}")
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    if method != "HEAD":
        assert response.json_body == {"title": "405 Method Not Allowed"}
    listed = client.http.get("/v2/queues", headers=headers()).json_body
    assert listed["queues"] == []


@pytest.mark.parametrize("path,allow", sorted({(path, allow) for _, path, allow
                                               in METHOD_NOT_ALLOWED}))
def test_options_lists_the_methods(app, path, allow):
    response = invoke(app, "OPTIONS", path, {})
    assert response["statusCode"] == 200
    assert response["headers"]["Allow"] == allow
    assert REQUEST_ID.fullmatch(response["headers"]["x-openstack-request-id"])


@pytest.mark.parametrize("method,path,extra,status", [
    ("GET", "/", {}, 300),
    ("GET", "/v2/", headers(), 200),
    ("HEAD", "/v2/ping", headers(), 204),
    ("PUT", "/v2/queues/q1", headers(), 201),
    ("GET", "/v2", headers(), 404),
    ("POST", "/v2/queues/q1", headers(), 405),
    ("GET", "/v2/queues", headers(Accept="text/xml"), 406),
    ("GET", "/v2/queues", {"X-Project-ID": "p"}, 400),
    ("PATCH", "/v2/queues/q1", headers(), 415),
    ("GET", "/v2/health", headers(), 403),
])
def test_every_response_has_a_request_id(client, method, path, extra, status):
    first = client.http.request(method, path, headers=extra)
    second = client.http.request(method, path, headers=extra)
    assert first.status_code == status
    ids = {first.headers["x-openstack-request-id"], second.headers["x-openstack-request-id"]}
    assert len(ids) == 2 and all(REQUEST_ID.fullmatch(value) for value in ids)


@pytest.mark.parametrize("code", ["ThrottlingException", "ResourceNotFoundException"])
def test_storage_failure_is_503_without_details(client, monkeypatch, code):
    with storage_failing(code, monkeypatch):
        created = client.http.put("/v2/queues/q1", headers=headers(), body='{"a": 1}')
        read = client.http.get("/v2/queues/q1", headers=headers())
    for response in (created, read):
        assert response.status_code == 503
        assert response.json_body == UNAVAILABLE
        assert REQUEST_ID.fullmatch(response.headers["x-openstack-request-id"])
    listed = client.http.get("/v2/queues", headers=headers()).json_body
    assert listed["queues"] == []


def test_ping_and_health_report_unreachable_storage(client, monkeypatch):
    with storage_failing("ThrottlingException", monkeypatch):
        ping = client.http.get("/v2/ping", headers=headers())
        pinged_head = client.http.head("/v2/ping", headers=headers())
        health = client.http.get("/v2/health", headers=headers(X_Roles="admin"))
    assert ping.status_code == 503
    assert ping.json_body["title"] == "Service temporarily unavailable"
    assert ping.json_body["description"].endswith(" Please try again in a few seconds.")
    assert pinged_head.status_code == 204
    assert health.status_code == 200
    assert health.json_body["storage_reachable"] is False
    for step in health.json_body["operation_status"].values():
        assert step["succeeded"] is False and step["ref"]


def test_unexpected_failure_is_500_without_details(client, monkeypatch):
    from chalicelib.actions import queues

    def broken(*_):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(queues, "get", broken)
    response = client.http.get("/v2/queues/q1", headers=headers())
    assert response.status_code == 500
    assert response.json_body == {"title": "Internal server error"}

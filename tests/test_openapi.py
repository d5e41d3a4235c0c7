"""The OpenAPI 3.1 description the API serves at /v2/openapi.json: open to
anyone, valid, built from the app's own routes and schemas/ (limits from the
settings), with Zaqar's statuses, headers and error bodies; and real answers
hold to the shapes it gives them. (tests/e2e/test_schemathesis.py fuzzes the
local runner with it.)"""
import dataclasses
import json
import re

import jsonschema
import pytest
from chalice import Blueprint, Chalice
from openapi_spec_validator import validate as validate_openapi

from chalicelib import config, rest
from chalicelib.rest import openapi, route
from conftest import headers

METHODS = ("get", "head", "post", "put", "patch", "delete")


@pytest.fixture
def described(client):
    answer = client.http.get("/v2/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    return json.loads(answer.body)


def operations(document):
    return {(method.upper(), path): operation
            for path, item in document["paths"].items()
            for method, operation in item.items() if method in METHODS}


def answer_schema(document, operation, status, media_type="application/json"):
    """A validator for a response body the description gives `operation`."""
    schema = operation["responses"][str(status)]["content"][media_type]["schema"]
    return jsonschema.Draft202012Validator({**document, **schema})


def test_served_without_any_header_and_valid_openapi_3_1(described):
    assert described["openapi"] == "3.1.0"
    # The API's root relative to the document, whatever stage prefix it has.
    assert described["servers"] == [{"url": "../"}]
    validate_openapi(described)


def test_every_route_of_the_app_is_described_and_nothing_else(app, described):
    routed = set()
    for path, entries in app.routes.items():
        for method, entry in entries.items():
            if entry.view_name.startswith(("not_allowed_", "options_")):
                continue  # the 405 and OPTIONS fallbacks
            routed.add((method, "/v2/" if path == "/v2" else path))
    assert set(operations(described)) == routed
    assert ("OPTIONS", "/v2/queues") not in operations(described)
    ids = [operation["operationId"] for operation in operations(described).values()]
    assert len(ids) == len(set(ids))


def test_a_route_left_out_of_the_description_fails_its_build():
    blueprint = Blueprint(__name__)

    @route(blueprint, "/v2/queues/{queue_name}/undescribed", ["GET"], "queues:get")
    def undescribed(call, queue_name):
        return rest.respond(204)

    other = Chalice(app_name="undescribed")
    other.register_blueprint(blueprint)
    with pytest.raises(ValueError, match="GET /v2/queues/{queue_name}/undescribed"):
        openapi.describe(other, config.get_settings())


def test_request_bodies_are_the_schemas_with_the_settings_limits(described):
    settings = config.get_settings()
    schemas = described["components"]["schemas"]
    posted = schemas["messages_post"]["properties"]["messages"]
    assert posted["maxItems"] == settings.max_messages_per_post
    assert posted["items"]["properties"]["ttl"]["maximum"] == settings.max_message_ttl
    assert schemas["claim_create"]["properties"]["grace"]["maximum"] == settings.max_claim_grace
    # A reference inside a schema file points into the components.
    retries = schemas["queue_metadata"]["properties"]["_retry_policy"]["properties"]
    assert retries["minimum_delay"] == {"$ref": "#/components/schemas/queue_metadata.retry_count"}
    assert "$setting" not in json.dumps(described)
    assert not re.search(r'"\$max_\w+"', json.dumps(described))
    post = operations(described)["POST", "/v2/queues/{queue_name}/messages"]
    assert post["requestBody"] == {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/messages_post"}}}}
    patch = operations(described)["PATCH", "/v2/queues/{queue_name}"]
    assert list(patch["requestBody"]["content"]) == [
        "application/openstack-messaging-v2.0-json-patch"]


def test_limits_follow_the_stage_settings(client, monkeypatch):
    stage_settings = config.get_settings
    monkeypatch.setattr(rest, "get_settings", lambda: dataclasses.replace(
        stage_settings(), max_messages_per_page=7, max_claim_ttl=600))
    document = json.loads(client.http.get("/v2/openapi.json").body)
    listing = operations(document)["GET", "/v2/queues/{queue_name}/messages"]
    [limit] = [parameter for parameter in listing["parameters"]
               if parameter.get("name") == "limit"]
    assert limit["schema"]["maximum"] == 7
    claim_ttl = document["components"]["schemas"]["claim_create"]["properties"]["ttl"]
    assert claim_ttl["maximum"] == 600


def test_statuses_and_locations_as_zaqar_answers(described):
    found = operations(described)

    def statuses(method, path):
        return set(found[method, path]["responses"])

    def location(method, path, status):
        return "Location" in found[method, path]["responses"][status]["headers"]

    assert {"201", "204"} <= statuses("PUT", "/v2/queues/{queue_name}")
    assert location("PUT", "/v2/queues/{queue_name}", "201")
    assert location("PUT", "/v2/queues/{queue_name}", "204")
    assert location("POST", "/v2/queues/{queue_name}/messages", "201")
    assert {"201", "204"} <= statuses("POST", "/v2/queues/{queue_name}/claims")
    assert location("POST", "/v2/queues/{queue_name}/claims", "201")
    assert not location("POST", "/v2/queues/{queue_name}/claims", "204")
    assert {"200", "204"} <= statuses("DELETE", "/v2/queues/{queue_name}/messages")
    assert "300" in statuses("GET", "/")
    assert "404" in statuses("GET", "/v2/queues/{queue_name}/claims/{claim_id}")
    assert {"409", "415"} <= statuses("PATCH", "/v2/queues/{queue_name}")
    for (method, path), operation in found.items():
        for status, response in operation["responses"].items():
            assert response["headers"]["x-openstack-request-id"] == {
                "$ref": "#/components/headers/RequestId"}, (method, path, status)
            if status.startswith(("4", "5")):
                assert response["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/responses.error"}
        if path not in ("/", "/v2/openapi.json"):
            assert {"400", "403", "503"} <= set(operation["responses"]), (method, path)
    error = described["components"]["schemas"]["responses.error"]
    assert error["required"] == ["title"] and "description" in error["properties"]


def test_headers_and_security(described, client, monkeypatch):
    found = operations(described)
    queue = found["GET", "/v2/queues/{queue_name}"]
    assert {"$ref": "#/components/parameters/ClientID"} in queue["parameters"]
    assert {"$ref": "#/components/parameters/ProjectID"} in queue["parameters"]
    parameters = described["components"]["parameters"]
    assert parameters["ClientID"]["name"] == "Client-ID"
    assert parameters["ClientID"]["required"] is True
    # The dev stage is noauth: the project is named by the caller, no token.
    assert parameters["ProjectID"]["required"] is True
    assert queue["security"] == [{}]
    for open_route in (("GET", "/"), ("GET", "/v2/openapi.json")):
        assert found[open_route]["security"] == []
        assert "parameters" not in found[open_route]
    assert described["components"]["securitySchemes"]["keystone"] == {
        "type": "apiKey", "in": "header", "name": "X-Auth-Token",
        "description": "A Keystone token (identity v3); the project and roles come from it"}

    stage_settings = config.get_settings
    monkeypatch.setattr(rest, "get_settings", lambda: dataclasses.replace(
        stage_settings(), auth_strategy="keystone"))
    keystone = json.loads(client.http.get("/v2/openapi.json").body)
    assert keystone["security"] == [{"keystone": []}]
    assert keystone["components"]["parameters"]["ProjectID"]["required"] is False
    found = operations(keystone)
    assert "security" not in found["GET", "/v2/queues/{queue_name}"]
    # API Gateway answers a refused token itself: no request id there.
    assert found["GET", "/v2/queues/{queue_name}"]["responses"]["401"]["headers"] == {
        "WWW-Authenticate": {"$ref": "#/components/headers/WWWAuthenticate"}}
    assert found["GET", "/v2/queues/{queue_name}/messages"]["security"] == [
        {"keystone": []}, {"signedUrl": []}]
    assert found["GET", "/"]["security"] == []
    validate_openapi(keystone)


def test_built_once_per_warm_function(client):
    openapi.describe.cache_clear()
    for _ in range(3):
        assert client.http.get("/v2/openapi.json").status_code == 200
    assert openapi.describe.cache_info().misses == 1
    assert openapi.describe.cache_info().hits == 2


def test_real_answers_hold_to_the_described_shapes(client, described):
    found = operations(described)

    def call(method, path, body=None, **extra):
        answer = getattr(client.http, method.lower())(
            path, headers=headers(**extra), body=None if body is None else json.dumps(body))
        return answer, (json.loads(answer.body) if answer.body else None)

    def holds(method, template, status, answer, body):
        assert answer.status_code == status, answer.body
        operation = found[method, template]
        answer_schema(described, operation, status).validate(body)

    q = "/v2/queues/shapes"
    answer, _ = call("PUT", q, {"_default_message_ttl": 120, "color": "blue"})
    assert answer.status_code == 201
    answer, body = call("POST", f"{q}/messages",
                        {"messages": [{"body": {"n": n}, "ttl": 300} for n in range(3)]})
    holds("POST", "/v2/queues/{queue_name}/messages", 201, answer, body)
    template = "/v2/queues/{queue_name}"
    for method, path, status in (
            ("GET", "/v2/queues?detailed=true&with_count=true", 200),
            ("GET", q, 200), ("GET", f"{q}/stats", 200),
            ("GET", f"{q}/messages?echo=true", 200)):
        answer, body = call(method, path)
        described_path = path.split("?")[0].replace("/shapes", "/{queue_name}")
        holds(method, described_path, status, answer, body)
    answer, body = call("POST", f"{q}/claims?limit=2", {"ttl": 120, "grace": 60})
    holds("POST", f"{template}/claims", 201, answer, body)
    claim = answer.headers["Location"]
    answer, body = call("GET", claim)
    holds("GET", f"{template}/claims/{{claim_id}}", 200, answer, body)
    assert len(body["messages"]) == 2
    answer, body = call("DELETE", f"{q}/messages?pop=1")
    holds("DELETE", f"{template}/messages", 200, answer, body)
    answer, body = call("POST", f"{q}/subscriptions",
                        {"subscriber": "http://127.0.0.1:9/shapes", "ttl": 600})
    holds("POST", f"{template}/subscriptions", 201, answer, body)
    answer, body = call("GET", f"{q}/subscriptions")
    holds("GET", f"{template}/subscriptions", 200, answer, body)
    answer, body = call("GET", f"{q}/claims/nope")
    holds("GET", f"{template}/claims/{{claim_id}}", 404, answer, body)
    answer, body = call("GET", "/v2/health", **{"X-Roles": "admin"})
    holds("GET", "/v2/health", 200, answer, body)
    answer = client.http.get("/")
    holds("GET", "/", 300, answer, json.loads(answer.body))

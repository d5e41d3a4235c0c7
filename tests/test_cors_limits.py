"""CORS, per-project throttling and quotas, through the app as a browser or a
client meets them (the Chalice test client on moto; OPTIONS through the
Lambda event the test client cannot send)."""
import json

import pytest
from chalice.local import LambdaContext, LambdaEventConverter, RouteMatcher

from chalicelib import cors, throttle
from chalicelib.auth import Misconfigured, check_settings, gateway
from chalicelib.config import get_settings
from chalicelib.storage import stats
from chalicelib.websocket import protocol
from conftest import headers
from support.api import call
from support.streams import stream_records

PAGE = "https://app.example.com"
OTHER_PAGE = "https://evil.example.net"
MESSAGES = "/v2/queues/q/messages"


@pytest.fixture
def origins(monkeypatch):
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", f"{PAGE}, https://second.example.com")


@pytest.fixture
def fresh_buckets(monkeypatch):
    monkeypatch.setattr(throttle, "_buckets", {})


def invoke(app, method, path, request_headers):
    converter = LambdaEventConverter(RouteMatcher(list(app.routes)))
    event = converter.create_lambda_event(method, path, request_headers)
    return app(event, LambdaContext("api_handler", 128))


def preflight(app, path, method, origin=PAGE, asked="content-type,client-id,x-project-id"):
    return invoke(app, "OPTIONS", path, {
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": asked})


class WebsocketEvent:
    connection_id, domain_name, stage = "conn-limits", "localhost", "dev"


def ws_answer(frame):
    """(echoed request, status, body) of one websocket frame."""
    return protocol.answer(WebsocketEvent, frame, False, get_settings())


def cors_headers(response_headers):
    return {name: value for name, value in response_headers.items()
            if name.lower().startswith("access-control-") or name.lower() == "vary"}


# -- CORS -----------------------------------------------------------------------

def test_a_preflight_from_an_allowed_origin_gets_what_a_browser_needs(app, origins):
    answer = preflight(app, MESSAGES, "POST")
    assert answer["statusCode"] == 200
    found = answer["headers"]
    assert found["Access-Control-Allow-Origin"] == PAGE
    assert found["Vary"] == "Origin"
    assert found["Access-Control-Allow-Methods"] == "GET, POST, DELETE"
    allowed = {name.strip().lower() for name in found["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "x-auth-token", "client-id", "x-project-id", "content-type",
            "accept", "url-signature", "url-expires", "url-methods", "url-paths"} <= allowed
    assert found["Access-Control-Max-Age"] == "3600"
    assert "Access-Control-Allow-Credentials" not in found
    assert found["Allow"] == "DELETE, GET, POST, OPTIONS"


def test_the_second_allowed_origin_is_echoed_too(app, origins):
    answer = preflight(app, "/v2/queues/q", "PUT", origin="https://second.example.com")
    assert answer["headers"]["Access-Control-Allow-Origin"] == "https://second.example.com"


@pytest.mark.parametrize("origin", [OTHER_PAGE, "https://app.example.com.evil.net",
                                    "http://app.example.com"])
def test_a_preflight_from_another_origin_gets_no_cors_headers(app, origins, origin):
    answer = preflight(app, MESSAGES, "POST", origin=origin)
    assert answer["statusCode"] == 200
    assert cors_headers(answer["headers"]) == {}


def test_a_preflight_for_a_method_the_path_lacks_gets_no_cors_headers(app, origins):
    assert cors_headers(preflight(app, "/v2/queues", "PUT")["headers"]) == {}


def test_no_origin_is_allowed_by_default(app):
    assert cors_headers(preflight(app, MESSAGES, "POST")["headers"]) == {}
    answer = invoke(app, "GET", "/v2/queues", {"Origin": PAGE, **headers()})
    assert cors_headers(answer["headers"]) == {}


def test_answers_to_an_allowed_origin_carry_cors_headers(client, origins):
    answer = client.http.get("/v2/queues", headers={"Origin": PAGE, **headers()})
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == PAGE
    assert answer.headers["Vary"] == "Origin"
    exposed = answer.headers["Access-Control-Expose-Headers"]
    assert "Location" in exposed and "x-openstack-request-id" in exposed


@pytest.mark.parametrize("method, path, extra, status", [
    ("GET", "/v2/queues/q/messages/0123456789abcdef01234567", {}, 404),
    ("GET", "/v2/queues", {"Client-ID": "not-a-uuid"}, 400),
    ("PUT", "/v2/queues/q/messages", {}, 405),
    ("GET", "/v2/health", {"X-Roles": "member"}, 403),
])
def test_error_answers_carry_them_too(client, origins, method, path, extra, status):
    answer = client.http.request(method, path, headers={"Origin": PAGE, **headers(), **extra})
    assert answer.status_code == status
    assert answer.headers["Access-Control-Allow-Origin"] == PAGE
    other = client.http.request(method, path,
                                headers={"Origin": OTHER_PAGE, **headers(), **extra})
    assert other.status_code == status
    assert cors_headers(other.headers) == {}


def test_any_origin_without_credentials(app, monkeypatch):
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "*")
    found = preflight(app, MESSAGES, "GET", origin=OTHER_PAGE)["headers"]
    assert found["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in found


def test_credentials_are_announced_for_named_origins(app, origins, monkeypatch):
    monkeypatch.setenv("CORS_ALLOW_CREDENTIALS", "true")
    found = preflight(app, MESSAGES, "GET")["headers"]
    assert found["Access-Control-Allow-Credentials"] == "true"


@pytest.mark.parametrize("environ, complaint", [
    ({"CORS_ALLOWED_ORIGINS": "*", "CORS_ALLOW_CREDENTIALS": "true"}, "cannot go with"),
    ({"CORS_ALLOWED_ORIGINS": "app.example.com"}, "is not an origin"),
    ({"CORS_ALLOWED_ORIGINS": "https://app.example.com/"}, "is not an origin"),
])
def test_settings_a_browser_would_refuse_are_refused_at_start(environ, complaint):
    settings = get_settings({"AUTH_STRATEGY": "noauth", "STAGE": "dev", **environ})
    with pytest.raises(Misconfigured, match=complaint):
        check_settings(settings)


def test_preflights_pass_the_authorizer_everywhere(app):
    assert all(gateway.is_open("OPTIONS", path) for path in app.routes)
    assert not gateway.is_open("GET", "/v2/queues")


def test_gateway_answers_carry_the_first_allowed_origin():
    assert cors.first_origin(f" {PAGE},https://second.example.com") == PAGE
    assert cors.first_origin("") is None
    assert cors.gateway_headers(PAGE, True) == {
        "Access-Control-Allow-Origin": PAGE, "Vary": "Origin",
        "Access-Control-Allow-Credentials": "true"}


# -- throttling -------------------------------------------------------------------

def test_a_project_past_its_rate_gets_429_while_another_is_served(
        client, clock, monkeypatch, fresh_buckets, origins):
    monkeypatch.setenv("PROJECT_RATE_LIMIT", "2")
    monkeypatch.setenv("PROJECT_BURST_LIMIT", "3")
    for _ in range(3):  # the burst
        assert call(client, "GET", "/v2/queues", project="busy").status_code == 200
    answer = client.http.get("/v2/queues", headers={"Origin": PAGE, **headers("busy")})
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "1"
    assert answer.json_body == {
        "title": "Too many requests",
        "description": "Project busy made more than 2 requests per second (burst 3). "
                       "Please try again in 1 seconds."}
    assert answer.headers["Access-Control-Allow-Origin"] == PAGE  # a page can read it
    assert call(client, "GET", "/v2/queues", project="calm").status_code == 200
    clock.advance(1)  # two tokens back
    assert [call(client, "GET", "/v2/queues", project="busy").status_code
            for _ in range(3)] == [200, 200, 429]


def test_no_rate_limit_by_default(client, fresh_buckets):
    assert {call(client, "GET", "/v2/queues").status_code for _ in range(30)} == {200}


def test_websocket_frames_spend_the_same_tokens(client, clock, monkeypatch, fresh_buckets):
    monkeypatch.setenv("PROJECT_RATE_LIMIT", "1")
    frame = json.dumps({"action": "queue_list", "headers": headers("ws"), "body": {}})
    first = ws_answer(frame)
    assert first[1] == 200
    _, status, body = ws_answer(frame)
    assert (status, body["error"]) == (429, "Too many requests")
    assert "try again in 1 seconds" in body["exception"]
    assert call(client, "GET", "/v2/queues", project="ws").status_code == 429


# -- quotas -----------------------------------------------------------------------

def test_queues_per_project(client, monkeypatch):
    monkeypatch.setenv("MAX_QUEUES_PER_PROJECT", "2")
    assert call(client, "PUT", "/v2/queues/a", {}).status_code == 201
    assert call(client, "PUT", "/v2/queues/b", {}).status_code == 201
    refused = call(client, "PUT", "/v2/queues/c", {})
    assert refused.status_code == 403
    assert refused.json_body == {
        "title": "Quota exceeded",
        "description": "Project test-project already has the most queues this service "
                       "allows a project (max_queues_per_project: 2)."}
    # Nor is one made by a post or a subscription; an existing queue is fine.
    assert call(client, "POST", "/v2/queues/c/messages",
                {"messages": [{"body": 1}]}).status_code == 403
    assert call(client, "POST", "/v2/queues/c/subscriptions",
                {"subscriber": "http://127.0.0.1:9/", "ttl": 3600}).status_code == 403
    assert call(client, "PUT", "/v2/queues/b", {}).status_code == 204
    assert call(client, "POST", "/v2/queues/b/messages",
                {"messages": [{"body": 1}]}).status_code == 201
    listed = call(client, "GET", "/v2/queues").json_body["queues"]
    assert [queue["name"] for queue in listed] == ["a", "b"]
    assert call(client, "PUT", "/v2/queues/c", {}, project="other").status_code == 201


def test_messages_per_queue(client, monkeypatch, clock):
    monkeypatch.setenv("MAX_MESSAGES_PER_QUEUE", "3")
    assert call(client, "POST", MESSAGES,
                {"messages": [{"body": n} for n in range(2)]}).status_code == 201
    stats.apply_stream_records(stream_records())  # what the stream handler does
    refused = call(client, "POST", MESSAGES, {"messages": [{"body": n} for n in range(2)]})
    assert refused.status_code == 403
    assert refused.json_body == {
        "title": "Quota exceeded",
        "description": "Queue q holds 2 messages; 2 more would pass the most it may "
                       "hold (max_messages_per_queue: 3)."}
    assert call(client, "GET", "/v2/queues/q/stats").json_body["messages"]["total"] == 2
    assert call(client, "POST", MESSAGES, {"messages": [{"body": 2}]}).status_code == 201
    assert call(client, "POST", MESSAGES, {"messages": [{"body": 9}]},
                project="other").status_code == 201
    # A bad post is still a 400, not a quota refusal.
    assert call(client, "POST", MESSAGES, {"messages": []}).status_code == 400


def test_subscriptions_per_queue(client, monkeypatch):
    monkeypatch.setenv("MAX_SUBSCRIPTIONS_PER_QUEUE", "1")
    first = {"subscriber": "http://127.0.0.1:9/a", "ttl": 3600}
    assert call(client, "POST", "/v2/queues/q/subscriptions", first).status_code == 201
    refused = call(client, "POST", "/v2/queues/q/subscriptions",
                   {"subscriber": "http://127.0.0.1:9/b", "ttl": 3600})
    assert refused.status_code == 403
    assert "max_subscriptions_per_queue: 1" in refused.json_body["description"]
    # The one subscribed already is answered as before, not refused.
    assert call(client, "POST", "/v2/queues/q/subscriptions", first).status_code in (201, 409)
    listed = call(client, "GET", "/v2/queues/q/subscriptions").json_body
    assert [found["subscriber"] for found in listed["subscriptions"]] == [first["subscriber"]]


def test_websocket_frames_meet_the_same_quotas(app, monkeypatch):
    monkeypatch.setenv("MAX_QUEUES_PER_PROJECT", "1")

    def frame(name):
        return json.dumps({"action": "queue_create", "headers": headers(),
                           "body": {"queue_name": name}})
    assert ws_answer(frame("one"))[1] == 201
    _, status, body = ws_answer(frame("two"))
    assert status == 403 and body["error"] == "Quota exceeded"


# -- the template ---------------------------------------------------------------

def packaged(settings, origins_variable=None):
    """infra/package.py's CORS and throttling wiring, on a template holding
    what Chalice and attach_authorizer wrote of it."""
    from infra import package
    variables = {} if origins_variable is None else {"CORS_ALLOWED_ORIGINS": origins_variable}
    resources = {
        "APIHandler": {"Type": "AWS::Serverless::Function",
                       "Properties": {"Environment": {"Variables": variables}}},
        "RestAPI": {"Type": "AWS::Serverless::Api", "Properties": {"DefinitionBody": {
            "x-amazon-apigateway-gateway-responses": {"UNAUTHORIZED": {
                "statusCode": "401",
                "responseParameters": {"gatewayresponse.header.WWW-Authenticate": "'x'"}}}}}}}
    package.wire_cors_and_throttling(resources, settings)
    return resources["RestAPI"]["Properties"]


def test_the_template_gives_gateway_answers_cors_and_the_stage_throttling():
    api = packaged(get_settings({"CORS_ALLOWED_ORIGINS": f"{PAGE},{OTHER_PAGE}",
                                 "API_RATE_LIMIT": "500", "API_BURST_LIMIT": "200"}))
    responses = api["DefinitionBody"]["x-amazon-apigateway-gateway-responses"]
    # Those set (as attach_authorizer and resources.json set theirs), and the
    # fallbacks of all the others (ACCESS_DENIED...).
    assert set(responses) == {"UNAUTHORIZED", "THROTTLED", "DEFAULT_4XX", "DEFAULT_5XX"}
    for response in responses.values():
        parameters = response["responseParameters"]
        assert parameters["gatewayresponse.header.Access-Control-Allow-Origin"] == f"'{PAGE}'"
        assert parameters["gatewayresponse.header.Vary"] == "'Origin'"
    assert responses["UNAUTHORIZED"]["responseParameters"][
        "gatewayresponse.header.WWW-Authenticate"] == "'x'"  # kept
    throttled = responses["THROTTLED"]
    assert throttled["statusCode"] == "429"
    assert throttled["responseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"
    assert json.loads(throttled["responseTemplates"]["application/json"])["title"] == (
        "Too many requests")
    assert api["MethodSettings"] == [{"ResourcePath": "/*", "HttpMethod": "*",
                                      "ThrottlingRateLimit": 500, "ThrottlingBurstLimit": 200}]


def test_the_template_takes_the_origin_from_a_stack_parameter():
    api = packaged(get_settings({}), {"Ref": "CorsAllowedOrigins"})
    parameters = (api["DefinitionBody"]["x-amazon-apigateway-gateway-responses"]
                  ["DEFAULT_4XX"]["responseParameters"])
    assert parameters["gatewayresponse.header.Access-Control-Allow-Origin"] == {
        "Fn::Join": ["", ["'", {"Fn::Select": [0, {"Fn::Split": [
            ",", {"Ref": "CorsAllowedOrigins"}]}]}, "'"]]}
    assert "MethodSettings" not in api


def test_a_stage_allowing_no_origin_gives_gateway_answers_no_cors():
    responses = packaged(get_settings({}))["DefinitionBody"][
        "x-amazon-apigateway-gateway-responses"]
    assert not any("Access-Control" in name for response in responses.values()
                   for name in response["responseParameters"])

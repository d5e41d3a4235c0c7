"""Pre-signed URLs: the share route and requests that carry a signature."""
import json
import os
from unittest import mock

import boto3
import pytest
from chalice.test import Client

from chalicelib import parameters, signed_urls
from conftest import ROOT, headers


@pytest.mark.parametrize("text, expected", [
    (r"/v2/queues/q1/claims,/v2/queues/q1/messages\nGET,POST\nproj1\n2026-11-30T06:53:11",
     "f660abd59ab544267900b7a5c07ddea3bf6d341ba9c48e80235ddfd45162619d"),
    (r"/v2/queues/cq/subscriptions/a27de63f-d4b8-4610-93b4-c97be5b7be56/confirm\nPUT"
     r"\nproj3\n2026-11-29T07:03:41",
     "c54fb5e7f7adae5df7d040c2e06b8e28bfbcc00f535bd1083d1cd19f18c2374b"),
])
def test_signatures_match_zaqars_vectors(text, expected):
    paths, methods, project, expires = text.split(r"\n")
    assert signed_urls.signature("test", paths.split(","), methods.split(","),
                                 project, expires) == expected


def share(client, body, **extra):
    return client.http.post("/v2/queues/q1/share", headers=headers(**extra),
                            body=body if isinstance(body, str) else json.dumps(body))


def test_share_signs_sorted_full_paths_and_methods(client):
    answer = share(client, {"paths": ["messages", "claims"], "methods": ["POST", "GET"],
                            "expires": "2099-01-01T00:00:00"})
    assert answer.status_code == 200
    signed = answer.json_body
    assert signed["paths"] == ["/v2/queues/q1/claims", "/v2/queues/q1/messages"]
    assert signed["methods"] == ["GET", "POST"]
    assert signed["project"] == "test-project"
    assert signed["expires"] == "2099-01-01T00:00:00"
    assert len(signed["signature"]) == 64


def test_share_defaults_to_reading_messages_for_a_day(client):
    signed = share(client, {}).json_body
    assert (signed["paths"], signed["methods"]) == (["/v2/queues/q1/messages"], ["GET"])


@pytest.mark.parametrize("body, description", [
    ("", "Request body could not be parsed."),
    ({"paths": ["messages"], "colour": "red"}, "Unknown keys: {'colour'}"),
    ({"paths": ["stats"]}, "Invalid paths: ['stats']"),
    ({"expires": 1234}, "`expires` should be date format, for example "
                        "2016-01-01T00:00:00, not integer value: 1234"),
    ({"expires": "2001-01-01T00:00:00"}, "`expires` should be a date in the future."),
])
def test_share_refuses_bad_bodies(client, body, description):
    answer = share(client, body)
    assert answer.status_code == 400
    assert answer.json_body["description"] == description


def test_share_needs_a_list_of_methods(client):
    assert share(client, {"methods": "GET"}).status_code == 400


def signed_headers(signed, project="test-project", **changes):
    sent = headers(project=project)
    sent.update({"URL-Signature": signed["signature"], "URL-Expires": signed["expires"],
                 "URL-Methods": ",".join(signed["methods"]),
                 "URL-Paths": ",".join(signed["paths"])})
    sent.update(changes)
    return sent


@pytest.fixture
def signed(client):
    client.http.post("/v2/queues/q1/messages", headers=headers(), body=json.dumps(
        {"messages": [{"body": "hello"}]}))
    return share(client, {"paths": ["messages"], "methods": ["GET"],
                          "expires": "2099-01-01T00:00:00"}).json_body


def test_a_signed_request_is_served(client, signed):
    answer = client.http.get("/v2/queues/q1/messages?echo=true",
                             headers=signed_headers(signed))
    assert answer.status_code == 200
    [message] = answer.json_body["messages"]
    # A signed path also covers what lies below it.
    one = client.http.get(f"/v2/queues/q1/messages/{message['id']}",
                          headers=signed_headers(signed))
    assert one.status_code == 200


@pytest.mark.parametrize("method, path, changes", [
    ("POST", "/v2/queues/q1/messages", {}),  # method not signed
    ("GET", "/v2/queues/q1/stats", {}),  # path not signed
    ("GET", "/v2/queues/q2/messages", {}),  # another queue
    ("GET", "/v2/queues/q1/messages", {"URL-Signature": ""}),
    ("GET", "/v2/queues/q1/messages", {"URL-Signature": "0" * 64}),
    ("GET", "/v2/queues/q1/messages", {"URL-Methods": "GET,POST"}),  # widened
    ("GET", "/v2/queues/q1/messages", {"X-Project-ID": "another"}),
])
def test_anything_not_signed_is_not_found(client, signed, method, path, changes):
    sent = signed_headers(signed, **changes)
    answer = getattr(client.http, method.lower())(path, headers=sent, body="{}")
    assert answer.status_code == 404
    assert answer.json_body == {"title": "404 Not Found"}


def test_an_expired_signature_is_not_found(client, signed):
    with mock.patch("chalicelib.clock.now_ms", return_value=4102444801000):  # 2100
        answer = client.http.get("/v2/queues/q1/messages", headers=signed_headers(signed))
    assert answer.status_code == 404


def test_a_signature_for_no_project_serves_no_project(client, signed):
    """Signed for project None (as if by someone holding the key), it must not
    act on the project a request names through a legacy header."""
    key = os.environ["SIGNED_URL_SECRET_KEY"]
    forged = signed_urls.sign(key, ["/v2/queues/q1/messages"], ["GET"], None,
                              signed_urls.parse_expires("2099-01-01T00:00:00"))
    sent = signed_headers(forged)
    del sent["X-Project-ID"]
    sent["X-Tenant-Id"] = "test-project"
    answer = client.http.get("/v2/queues/q1/messages?echo=true", headers=sent)
    assert (answer.status_code, answer.json_body) == (404, {"title": "404 Not Found"})


def test_a_signature_binds_the_project_named_by_a_legacy_header(client):
    share_headers = headers()
    del share_headers["X-Project-ID"]
    share_headers["X-Tenant-Id"] = "tenant-only"
    shared = client.http.post("/v2/queues/q1/share", headers=share_headers,
                              body=json.dumps({"expires": "2099-01-01T00:00:00"}))
    assert shared.json_body["project"] == "tenant-only"
    sent = signed_headers(shared.json_body)
    del sent["X-Project-ID"]
    sent["X-Tenant-Id"] = "tenant-only"
    assert client.http.get("/v2/queues/q1/messages", headers=sent).status_code == 200
    sent["X-Tenant-Id"] = "test-project"
    assert client.http.get("/v2/queues/q1/messages", headers=sent).status_code == 404


def test_signed_lists_may_come_in_any_order_as_zaqar_sorts_them(client):
    signed = share(client, {"paths": ["messages", "claims"], "methods": ["GET", "POST"],
                            "expires": "2099-01-01T00:00:00"}).json_body
    sent = signed_headers(signed, **{"URL-Methods": "POST,GET", "URL-Paths": ",".join(
        reversed(signed["paths"]))})
    assert client.http.get("/v2/queues/q1/messages", headers=sent).status_code == 200


@pytest.mark.parametrize("changes", [
    {"URL-Methods": "GET,"},
    {"URL-Methods": ",GET"},
    {"URL-Paths": "/v2/queues/q1/messages,"},
    {"URL-Paths": ",/v2/queues/q1/messages"},
    {"URL-Methods": "GET,GET"},
    {"URL-Methods": "get"},
    {"URL-Paths": "/v2/queues/q1/messages/"},
])
def test_a_list_changed_in_any_other_way_is_not_found(client, signed, changes):
    answer = client.http.get("/v2/queues/q1/messages", headers=signed_headers(signed, **changes))
    assert (answer.status_code, answer.json_body) == (404, {"title": "404 Not Found"})


def test_a_signed_path_covers_only_whole_segments_below_it():
    assert signed_urls.covers("/v2/queues/q1/messages", "/v2/queues/q1/messages/00ab")
    assert not signed_urls.covers("/v2/queues/q1/messages", "/v2/queues/q1/messagesx")
    assert not signed_urls.covers("", "/v2/queues/q1/messages")


# -- deployed: the key is an SSM SecureString, named by the stage ----------------

KEY_PARAMETER = "/zaqar/test/signed-url-secret-key"


@pytest.fixture
def ssm_keyed_client(app, tmp_path, monkeypatch):
    """The dev stage as prod keeps its key: SIGNED_URL_SECRET_KEY_PARAMETER
    names an SSM parameter, and no SIGNED_URL_SECRET_KEY is set."""
    monkeypatch.setattr(parameters, "_values", {})  # a cold function
    monkeypatch.delenv("SIGNED_URL_SECRET_KEY")
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    variables = config["stages"]["dev"]["environment_variables"]
    del variables["SIGNED_URL_SECRET_KEY"]
    variables["SIGNED_URL_SECRET_KEY_PARAMETER"] = KEY_PARAMETER
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    with Client(app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def test_a_signed_url_works_with_the_key_read_from_ssm(ssm_keyed_client):
    client = ssm_keyed_client
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name=KEY_PARAMETER, Value="kept-in-ssm", Type="SecureString")
    client.http.post("/v2/queues/q1/messages", headers=headers(),
                     body=json.dumps({"messages": [{"body": "hello"}]}))
    signed = share(client, {"paths": ["messages"], "methods": ["GET"],
                            "expires": "2099-01-01T00:00:00"}).json_body
    assert signed["signature"] == signed_urls.signature(
        "kept-in-ssm", signed["paths"], signed["methods"], "test-project", signed["expires"])
    # Read once per warm function: the parameter gone, the key is still known.
    ssm.delete_parameter(Name=KEY_PARAMETER)
    answer = client.http.get("/v2/queues/q1/messages?echo=true",
                             headers=signed_headers(signed))
    assert answer.status_code == 200
    assert [message["body"] for message in answer.json_body["messages"]] == ["hello"]


def test_a_key_that_cannot_be_read_is_a_503(ssm_keyed_client):
    answer = share(ssm_keyed_client, {"paths": ["messages"]})
    assert answer.status_code == 503
    assert answer.json_body["title"] == "Service temporarily unavailable"

"""Authentication settings and the answers that need no Keystone to check:
a stage that must not run without authentication, a missing token, Keystone
out of reach, the authorizer's answer to a signed request, policy overrides.
What a real Keystone says is tested end to end (tests/e2e/test_keystone_auth.py)."""
import dataclasses
import json
import re

import pytest

from chalicelib import config, rest
from chalicelib.auth import Misconfigured, check_settings, gateway, policy
from chalicelib.config import Settings
from conftest import CLIENT_ID
from local.dynamodb_local import free_port

UNCONFIGURED = "This service is not configured"


@pytest.fixture
def stage_settings(monkeypatch):
    """Replace the settings every request builds (the test client applies the
    dev stage's variables during each request): stage_settings(**changes)."""
    dev = config.get_settings

    def use(**changes):
        monkeypatch.setattr(rest, "get_settings",
                            lambda: dataclasses.replace(dev(), **changes))
    return use


@pytest.mark.parametrize("changes, complaint", [
    ({"stage": "prod", "auth_strategy": "noauth"}, "has AUTH_STRATEGY=noauth"),
    ({"stage": "", "auth_strategy": "noauth"}, "(unnamed)"),
    ({"auth_strategy": "keystone", "keystone_url": ""}, "needs KEYSTONE_URL"),
    ({"auth_strategy": "basic"}, "must be keystone or noauth"),
    ({"stage": "dev", "auth_strategy": "noauth", "policy": '{"queues:nope": ""}'},
     "no such rules: queues:nope"),
    ({"stage": "dev", "auth_strategy": "noauth", "policy": '{"queues:get": "user:bob"}'},
     "cannot read the check"),
])
def test_settings_no_request_could_be_served_with_are_refused(changes, complaint):
    with pytest.raises(Misconfigured, match=re.escape(complaint)):
        check_settings(dataclasses.replace(Settings(), **changes))


def test_noauth_is_allowed_on_dev_or_on_purpose():
    check_settings(Settings(stage="dev", auth_strategy="noauth"))
    check_settings(Settings(stage="staging", auth_strategy="noauth", allow_noauth=True))


def test_a_stage_left_without_authentication_refuses_every_caller(client, stage_settings):
    stage_settings(stage="prod", auth_strategy="noauth")
    answer = client.http.get("/v2/queues", headers={"Client-ID": CLIENT_ID,
                                                     "X-Project-ID": "p", "X-Roles": "admin"})
    assert answer.status_code == 503
    assert answer.json_body["description"].startswith(UNCONFIGURED)
    # The versions document stays open.
    assert client.http.get("/").status_code == 300


def test_without_a_token_keystone_is_not_asked_and_the_answer_is_401(client, stage_settings):
    url = f"http://127.0.0.1:{free_port()}/v3"  # nothing listens: asking would be a 503
    stage_settings(auth_strategy="keystone", keystone_url=url)
    answer = client.http.get("/v2/queues", headers={"Client-ID": CLIENT_ID,
                                                     "X-Project-ID": "p"})
    assert answer.status_code == 401
    assert answer.json_body == {
        "title": "Unauthorized",
        "description": "The request you have made requires authentication."}
    assert answer.headers["WWW-Authenticate"] == f'Keystone uri="{url}"'


def test_keystone_out_of_reach_is_a_503_and_changes_nothing(client, stage_settings):
    stage_settings(auth_strategy="keystone", keystone_url=f"http://127.0.0.1:{free_port()}/v3")
    answer = client.http.put("/v2/queues/q", body="{}", headers={
        "Client-ID": CLIENT_ID, "X-Auth-Token": "a-token", "Content-Type": "application/json"})
    assert answer.status_code == 503
    assert answer.json_body["description"].startswith(
        "The Keystone service is temporarily unavailable.")
    stage_settings(auth_strategy="noauth")
    listed = client.http.get("/v2/queues", headers={"Client-ID": CLIENT_ID,
                                                     "X-Project-ID": "p"})
    assert listed.json_body["queues"] == []


def test_the_authorizer_lets_signed_requests_through_to_their_checks():
    settings = Settings(auth_strategy="keystone", keystone_url="http://127.0.0.1:9/v3")
    arn = "arn:aws:execute-api:us-east-1:123456789012:abc/v2/GET/v2/queues/q/messages"
    allowed = gateway.authorize({"methodArn": arn, "headers": {"URL-Signature": "x"}},
                                settings)
    assert (allowed["principalId"], allowed["context"]) == (gateway.SIGNED, {})
    assert allowed["policyDocument"]["Statement"][0]["Resource"] == [
        "arn:aws:execute-api:us-east-1:123456789012:abc/v2/*/*"]
    # The route then checks the signature, and acts for no one else.
    assert gateway.identity_in({"authorizer": {"principalId": gateway.SIGNED}}) is None
    with pytest.raises(gateway.Refused, match="^Unauthorized$"):
        gateway.authorize({"methodArn": arn, "headers": {}}, settings)


def test_the_authorizers_context_comes_back_as_the_identity():
    settings = Settings(auth_strategy="noauth", stage="dev")
    arn = "arn:aws:execute-api:us-east-1:123456789012:abc/v2/GET/v2/queues"
    allowed = gateway.authorize({"methodArn": arn, "headers": {
        "X-Project-ID": "p1", "X-Roles": "member,admin"}}, settings)
    # API Gateway hands every context value on as a string.
    context = {key: str(value) for key, value in allowed["context"].items()}
    identity = gateway.identity_in({"authorizer": context})
    assert (identity.project, identity.roles) == ("p1", frozenset({"member", "admin"}))


def test_a_policy_override_changes_who_may_call(client, stage_settings):
    who = {"Client-ID": CLIENT_ID, "X-Project-ID": "p", "X-Roles": "member"}
    stage_settings(policy=json.dumps({"queues:get_all": "role:admin or role:auditor"}))
    assert client.http.get("/v2/queues", headers=who).status_code == 403
    assert client.http.get("/v2/queues", headers={**who, "X-Roles": "auditor"}).status_code == 200
    stage_settings(policy=json.dumps({"queues:get_all": "!"}))
    assert client.http.get("/v2/queues", headers={**who, "X-Roles": "admin"}).status_code == 403


def test_every_route_and_websocket_action_names_a_known_rule(app):
    from chalicelib.websocket.dispatch import ACTIONS
    assert {rule for _, rule in ACTIONS.values() if rule is not None} <= set(policy.DEFAULTS)
    # route() refuses an unknown rule when a route is declared.
    from chalice import Blueprint
    with pytest.raises(ValueError, match="no policy rule"):
        rest.route(Blueprint("probe"), "/v2/probe", ["GET"], "queues:peek")
    with pytest.raises(ValueError, match="not one of the routes open to anyone"):
        rest.route(Blueprint("probe"), "/v2/probe", ["GET"], None)

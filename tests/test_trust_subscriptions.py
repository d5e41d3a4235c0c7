"""Trust subscriptions (`trust+http(s)://`, auth-notes §4.3) through the
Chalice test client: refused without Keystone or without a trustee; in
keystone mode, with Keystone's answers faked at chalicelib.keystone_api, the
trust made with the caller's token and kept in options.trust_id, and
Keystone refusing or failing; deliveries with the trust's token; the
trustee's password read from SSM once. tests/e2e/test_trust_subscriptions.py
runs them against a real Keystone."""
import dataclasses
import json

import boto3
import moto
import pytest

from chalicelib import config, keystone_api, rest
from chalicelib.auth import keystone as keystone_auth
from chalicelib.notify import delivery, trusts
from chalicelib.storage.base import Subscription
from conftest import PROJECT, headers

QUEUE = "/v2/queues/news"
HOOK = "http://127.0.0.1:9/hook"  # loopback: the dev stage allows it
TRUSTEE = {"keystone_trustee_user": "zaqar", "keystone_trustee_password": "zaqar-secret"}
CALLER = {"user": {"id": "u-alpha"}, "project": {"id": PROJECT},
          "roles": [{"name": "member"}, {"name": "reader"}],
          "expires_at": "2999-01-01T00:00:00.000000Z"}
NOAUTH = ("The subscriber type trust+http needs Keystone trusts, which this service does "
          "not have; use http instead.")
NO_TRUSTEE = ("The subscriber type trust+http needs Keystone trusts, which this service "
              "does not have: no trustee (the service's Keystone user) is configured; use "
              "http instead.")


class FakeKeystone:
    """Keystone as keystone_api would find it: the caller's token is CALLER's,
    the trustee is u-zaqar, trusts are made and tokens issued (named after
    their trust) unless `refusals` holds an error for that call. Trust
    tokens validate only with a service token, as in Keystone."""

    def __init__(self):
        self.settings = dict(TRUSTEE)
        self.trusts, self.token_requests, self.validations = [], [], []
        self.refusals = {}

    def validate(self, url, token, timeout, service_token=None):
        self.validations.append((token, service_token))
        if token.startswith("token-of-t") and service_token is None:
            raise keystone_api.Refused(403)  # a trust's token may not validate itself
        return {"token": CALLER}

    def password_token(self, url, user, domain, password, timeout, trust_id=None):
        self.token_requests.append((user, domain, password, trust_id))
        if "password_token" in self.refusals:
            raise self.refusals["password_token"]
        return f"token-of-{trust_id}", {"token": {
            "user": {"id": "u-zaqar"}, "expires_at": "2999-01-01T00:00:00.000000Z"}}

    def create_trust(self, url, token, **trust):
        if "create_trust" in self.refusals:
            raise self.refusals["create_trust"]
        self.trusts.append({"token": token, **trust})
        return {"id": f"trust-{len(self.trusts)}"}


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch):
    for name in ("_passwords", "_trustees", "_tokens"):
        monkeypatch.setattr(trusts, name, {})
    monkeypatch.setattr(keystone_auth, "_believed", {})


@pytest.fixture
def keystone(monkeypatch):
    """The dev stage in keystone mode, with a trustee unless the test empties
    `.settings`, in front of a FakeKeystone."""
    fake = FakeKeystone()
    stage_settings = config.get_settings
    monkeypatch.setattr(rest, "get_settings", lambda: dataclasses.replace(
        stage_settings(), auth_strategy="keystone", keystone_url="http://127.0.0.1:9/v3",
        **fake.settings))
    for name in ("validate", "password_token", "create_trust"):
        monkeypatch.setattr(keystone_api, name, getattr(fake, name))
    return fake


def caller(**extra):
    return headers(X_Auth_Token="caller-token", **extra)


def subscribe(client, body):
    return client.http.post(f"{QUEUE}/subscriptions", headers=caller(), body=json.dumps(body))


def patch(client, sid, body):
    return client.http.patch(f"{QUEUE}/subscriptions/{sid}", headers=caller(),
                             body=json.dumps(body))


def options_of(client, sid):
    return client.http.get(f"{QUEUE}/subscriptions/{sid}", headers=caller()).json_body["options"]


def test_without_keystone_they_are_refused(client):
    answer = subscribe(client, {"subscriber": f"trust+{HOOK}"})
    assert (answer.status_code, answer.json_body["description"]) == (400, NOAUTH)
    sid = subscribe(client, {"subscriber": HOOK}).json_body["subscription_id"]
    answer = patch(client, sid, {"subscriber": f"trust+{HOOK}"})
    assert (answer.status_code, answer.json_body["description"]) == (400, NOAUTH)


def test_without_a_trustee_they_are_refused(client, keystone):
    keystone.settings = {}
    answer = subscribe(client, {"subscriber": f"trust+{HOOK}"})
    assert answer.status_code == 400
    assert answer.json_body == {"title": "Invalid API request", "description": NO_TRUSTEE}
    assert keystone.trusts == []


def test_subscribing_makes_a_trust_from_the_caller(client, keystone, clock):
    answer = subscribe(client, {"subscriber": f"trust+{HOOK}", "ttl": 600,
                                "options": {"k": "v"}})
    assert answer.status_code == 201, answer.body
    sid = answer.json_body["subscription_id"]
    expires = trusts._iso(clock.now + 600_000)
    assert keystone.trusts == [{
        "token": "caller-token", "trustor_user_id": "u-alpha", "trustee_user_id": "u-zaqar",
        "project_id": PROJECT, "roles": ["member", "reader"], "expires_at": expires,
        "timeout": 5}]
    # The trustee's id came from authenticating as it.
    assert keystone.token_requests == [("zaqar", "Default", "zaqar-secret", None)]
    assert options_of(client, sid) == {"k": "v", "trust_id": "trust-1"}


def test_a_given_trust_id_is_used_as_it_is(client, keystone):
    sid = subscribe(client, {"subscriber": f"trust+{HOOK}",
                             "options": {"trust_id": "theirs"}}).json_body["subscription_id"]
    assert options_of(client, sid) == {"trust_id": "theirs"}
    assert keystone.trusts == []
    answer = subscribe(client, {"subscriber": f"trust+{HOOK}/2", "options": {"trust_id": 7}})
    assert answer.status_code == 400
    assert answer.json_body["description"] == "options.trust_id must be a string."


@pytest.mark.parametrize("subscriber, description", [
    ("trust+http://10.0.0.8/", "The subscriber is refused: 10.0.0.8: a loopback, link-local "
                               "or private address, which webhooks may not reach."),
    ("trust+http://[::1/", "The subscriber trust+http://[::1/ is not a valid URL."),
])
def test_the_url_after_trust_is_checked_as_a_webhook(client, keystone, subscriber,
                                                     description):
    answer = subscribe(client, {"subscriber": subscriber})
    assert (answer.status_code, answer.json_body["description"]) == (400, description)
    assert keystone.trusts == []


@pytest.mark.parametrize("call, refusal, status", [
    ("create_trust", keystone_api.Refused(
        403, "You are not authorized to perform the requested action."), 403),
    ("create_trust", keystone_api.Refused(400, "Invalid role."), 400),
    ("create_trust", keystone_api.Unavailable("timed out"), 503),
    # The trustee's own credentials refused: the service's fault, not the caller's.
    ("password_token", keystone_api.Refused(401, "The request you have made requires "
                                                 "authentication."), 503),
])
def test_keystone_refusing_or_failing(client, keystone, call, refusal, status):
    keystone.refusals[call] = refusal
    answer = subscribe(client, {"subscriber": f"trust+{HOOK}"})
    assert answer.status_code == status
    if status == 503:
        assert answer.json_body == {
            "title": "Service temporarily unavailable",
            "description": "The Keystone service is temporarily unavailable. Please try "
                           "again in a few seconds."}
    else:
        assert answer.json_body == {
            "title": "Not authorized" if status == 403 else "Invalid API request",
            "description": "Keystone refused to create a trust for the subscription: "
                           f"{refusal.message}"}
    listed = client.http.get(f"{QUEUE}/subscriptions", headers=caller()).json_body
    assert listed["subscriptions"] == []


def test_updates_make_a_trust_for_a_new_subscriber_only(client, keystone):
    sid = subscribe(client, {"subscriber": HOOK, "options": {"k": "v"}}).json_body[
        "subscription_id"]
    assert patch(client, sid, {"subscriber": f"trust+{HOOK}"}).status_code == 204
    assert options_of(client, sid) == {"k": "v", "trust_id": "trust-1"}
    # Options replaced for the same subscriber keep its trust.
    assert patch(client, sid, {"options": {"k": "w"}}).status_code == 204
    assert options_of(client, sid) == {"k": "w", "trust_id": "trust-1"}
    assert patch(client, sid, {"ttl": 900, "subscriber": f"trust+{HOOK}"}).status_code == 204
    assert len(keystone.trusts) == 1
    # Another URL gets a trust of its own, never the old one.
    assert patch(client, sid, {"subscriber": f"trust+{HOOK}/2"}).status_code == 204
    assert options_of(client, sid) == {"k": "w", "trust_id": "trust-2"}
    assert patch(client, sid, {"subscriber": HOOK, "options": {}}).status_code == 204
    assert options_of(client, sid) == {}


def test_a_trust_token_is_validated_with_the_trustees(client, keystone):
    """As a subscriber calling back with its delivery's token: Keystone lets
    no one but a service validate it."""
    asking = headers(X_Auth_Token="token-of-t-1")
    assert client.http.get("/v2/queues", headers=asking).status_code == 200
    assert keystone.validations == [("token-of-t-1", None), ("token-of-t-1", "token-of-None")]
    keystone.settings = {}
    answer = client.http.get("/v2/queues", headers=headers(X_Auth_Token="token-of-t-2"))
    assert answer.status_code == 503
    assert answer.json_body["description"].startswith(
        "This token can be validated only with the service's own Keystone user (the "
        "trustee), which is not configured.")


# -- delivery ----------------------------------------------------------------

def trust_subscription(url, **options):
    return Subscription(id="s-1", queue=f"{PROJECT}/news", subscriber=f"trust+{url}",
                        ttl=600, expires=2 ** 50, options=options, confirmed=True)


@pytest.fixture
def trusting(monkeypatch):
    fake = FakeKeystone()
    monkeypatch.setattr(keystone_api, "password_token", fake.password_token)
    fake.settings = dataclasses.replace(config.get_settings(), auth_strategy="keystone",
                                        keystone_url="http://127.0.0.1:9/v3", **TRUSTEE)
    return fake


def test_a_delivery_carries_the_trusts_token(receiver, trusting):
    subscription = trust_subscription(f"{receiver.url}/hook?x=1", trust_id="t-1",
                                      post_headers={"x-auth-token": "not this one"})
    for _ in range(2):
        outcome = delivery.send(subscription, {"body": "hi"}, trusting.settings)
        assert outcome.delivered, outcome
    first = receiver.requests()[0]
    assert first["path"] == "/hook?x=1"
    assert first["headers"].get_all("X-Auth-Token") == ["token-of-t-1"]
    assert first["headers"]["Content-Type"] == "application/json"
    assert first["json"] == {"body": "hi"}
    # One token, reused while it is good for long enough.
    assert [request[3] for request in trusting.token_requests] == ["t-1"]


def test_a_token_is_asked_for_again_once_its_cache_time_is_up(receiver, trusting, clock):
    subscription = trust_subscription(receiver.url, trust_id="t-1")
    delivery.send(subscription, {}, trusting.settings)
    clock.advance(trusting.settings.keystone_cache_seconds)
    delivery.send(subscription, {}, trusting.settings)
    assert len(trusting.token_requests) == 2


@pytest.mark.parametrize("refusal", [keystone_api.Unavailable("timed out"),
                                     keystone_api.Refused(404, "Could not find trust")])
def test_no_token_is_a_failed_attempt_to_retry(receiver, trusting, refusal):
    trusting.refusals["password_token"] = refusal
    outcome = delivery.send(trust_subscription(receiver.url, trust_id="t-1"), {},
                            trusting.settings)
    assert (outcome.delivered, outcome.retryable) == (False, True)
    assert outcome.reason == f"no token for trust t-1: {refusal}"
    assert receiver.requests() == []


def test_no_trust_id_is_a_failure_for_good(receiver, trusting):
    outcome = delivery.send(trust_subscription(receiver.url), {}, trusting.settings)
    assert (outcome.delivered, outcome.retryable) == (False, False)
    assert outcome.reason == "the subscription has no trust_id"


def test_no_trustee_is_a_failed_attempt_to_retry(receiver, trusting):
    without_trustee = dataclasses.replace(trusting.settings, keystone_trustee_user="")
    outcome = delivery.send(trust_subscription(receiver.url, trust_id="t-1"), {},
                            without_trustee)
    assert (outcome.delivered, outcome.retryable) == (False, True)
    assert "no trustee is configured" in outcome.reason


def test_the_trustees_password_from_ssm_is_read_once(trusting):
    settings = dataclasses.replace(trusting.settings, keystone_trustee_password="",
                                   keystone_trustee_password_parameter="/zaqar/test/trustee")
    with moto.mock_aws():
        ssm = boto3.client("ssm", region_name=settings.aws_region)
        ssm.put_parameter(Name="/zaqar/test/trustee", Value="from-ssm", Type="SecureString")
        trusts.token_for(settings, "t-1")
        ssm.delete_parameter(Name="/zaqar/test/trustee")
        trusts.token_for(settings, "t-2")
    assert [request[2] for request in trusting.token_requests] == ["from-ssm", "from-ssm"]


def test_an_unreadable_parameter_is_keystone_unavailable(trusting):
    settings = dataclasses.replace(trusting.settings, keystone_trustee_password="",
                                   keystone_trustee_password_parameter="/zaqar/test/missing")
    with moto.mock_aws(), pytest.raises(keystone_api.Unavailable):
        trusts.token_for(settings, "t-1")
    assert trusting.token_requests == []

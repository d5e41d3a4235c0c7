"""Trust subscriptions (`trust+http(s)://`, auth-notes §4.3) where no
Keystone is asked: refused in noauth mode; deliveries that fail before any
call to Keystone (no trust_id, no trustee, the trustee's password not
readable from SSM). Everything that talks to Keystone runs against a real
one: tests/e2e/test_trust_subscriptions_client.py (in process) and
tests/e2e/test_trust_subscriptions.py (through the runner)."""
import dataclasses
import json

import moto
import pytest

from chalicelib import config, keystone_api, parameters
from chalicelib.notify import delivery, trusts
from chalicelib.storage.base import Subscription
from conftest import PROJECT, headers
from local.dynamodb_local import free_port

QUEUE = "/v2/queues/news"
HOOK = "http://127.0.0.1:9/hook"
NOAUTH = ("The subscriber type trust+http needs Keystone trusts, which this service does "
          "not have; use http instead.")


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch):
    for name in ("_trustees", "_tokens"):
        monkeypatch.setattr(trusts, name, {})
    monkeypatch.setattr(parameters, "_values", {})  # the trustee's password, from SSM


@pytest.fixture
def no_calls(monkeypatch):
    """Fails a test that would ask Keystone anything."""
    def refuse(method, url, *args, **kwargs):
        pytest.fail(f"Keystone was asked: {method} {url}")
    monkeypatch.setattr(keystone_api, "_call", refuse)


def test_without_keystone_they_are_refused(client, no_calls):
    answer = client.http.post(f"{QUEUE}/subscriptions", headers=headers(),
                              body=json.dumps({"subscriber": f"trust+{HOOK}"}))
    assert (answer.status_code, answer.json_body["description"]) == (400, NOAUTH)
    sid = client.http.post(f"{QUEUE}/subscriptions", headers=headers(),
                           body=json.dumps({"subscriber": HOOK})).json_body["subscription_id"]
    answer = client.http.patch(f"{QUEUE}/subscriptions/{sid}", headers=headers(),
                               body=json.dumps({"subscriber": f"trust+{HOOK}"}))
    assert (answer.status_code, answer.json_body["description"]) == (400, NOAUTH)


def trust_subscription(url, **options):
    return Subscription(id="s-1", queue=f"{PROJECT}/news", subscriber=f"trust+{url}",
                        ttl=600, expires=2 ** 50, options=options, confirmed=True)


@pytest.fixture
def settings():
    """Keystone mode with a trustee; Keystone's URL a closed port, never asked."""
    return dataclasses.replace(
        config.get_settings(), auth_strategy="keystone",
        keystone_url=f"http://127.0.0.1:{free_port()}/v3",
        keystone_trustee_user="zaqar", keystone_trustee_password="zaqar-secret")


def test_no_trust_id_is_a_failure_for_good(receiver, settings, no_calls):
    outcome = delivery.send(trust_subscription(receiver.url), {}, settings)
    assert (outcome.delivered, outcome.retryable) == (False, False)
    assert outcome.reason == "the subscription has no trust_id"


def test_no_trustee_is_a_failed_attempt_to_retry(receiver, settings, no_calls):
    without_trustee = dataclasses.replace(settings, keystone_trustee_user="")
    outcome = delivery.send(trust_subscription(receiver.url, trust_id="t-1"), {},
                            without_trustee)
    assert (outcome.delivered, outcome.retryable) == (False, True)
    assert "no trustee is configured" in outcome.reason
    assert receiver.requests() == []


def test_an_unreadable_parameter_is_keystone_unavailable(settings, no_calls):
    settings = dataclasses.replace(settings, keystone_trustee_password="",
                                   keystone_trustee_password_parameter="/zaqar/test/missing")
    with moto.mock_aws(), pytest.raises(keystone_api.Unavailable):
        trusts.token_for(settings, "t-1")


def test_a_trust_id_that_is_no_id_is_not_asked_about(settings, no_calls):
    for trust_id in ("", "../../users", "a/b", "x" * 129):
        assert not trusts.is_callers(settings, "caller-token", "u-1", PROJECT, trust_id)

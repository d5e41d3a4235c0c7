"""API keys (auth/apikey.py, rest/keys.py) through the Chalice test client on
moto: issued by an administrator and shown once, stored only as a keyed
hash, acting for their project and nowhere else, refused once revoked or
expired within the documented bound, last use written at most once a
minute; and how a stage combines modes."""
import dataclasses
import hashlib
import hmac
import json
import re

import boto3
import pytest

from chalicelib import auth, config, rest
from chalicelib.auth import Misconfigured, apikey, check_settings
from chalicelib.config import Settings
from chalicelib.storage import dynamodb
from chalicelib.storage import keys as key_store
from conftest import CLIENT_ID
from local.dynamodb_local import free_port

PEPPER = "dev-only-not-a-secret"  # the dev stage's API_KEY_SECRET


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(apikey, "_believed", {})


@pytest.fixture
def stage(monkeypatch):
    """The dev stage taking API keys (and Keystone tokens, from a Keystone
    that is not there: asking it would be a 503); stage(**changes)."""
    dev = config.get_settings
    changes = {"auth_strategy": "keystone,apikey",
               "keystone_url": f"http://127.0.0.1:{free_port()}/v3"}

    def settings():
        return dataclasses.replace(dev(), **changes)

    def use(**more):
        changes.update(more)
        return settings()
    monkeypatch.setattr(rest, "get_settings", settings)
    return use


@pytest.fixture
def admin(aws, stage):
    """An admin key, as `python -m local.keys bootstrap` makes the first one."""
    key, _ = apikey.issue(stage(), "ops", frozenset({"admin"}), "first-admin", None)
    return key


def ask(client, method, path, key=None, body=None, bearer=False, **extra):
    headers = {"Client-ID": CLIENT_ID, "Content-Type": "application/json", **extra}
    if key is not None:
        headers["Authorization" if bearer else "X-Auth-Token"] = (
            f"Bearer {key}" if bearer else key)
    return client.http.request(method, path, headers=headers,
                               body=b"" if body is None else json.dumps(body))


def issue(client, admin, project, roles=("member",), **more):
    answer = ask(client, "POST", "/v2/keys", admin,
                 {"project": project, "roles": list(roles), "name": "ci", **more})
    assert answer.status_code == 201, answer.body
    return answer.json_body


def test_a_key_is_shown_once_and_stored_only_as_its_keyed_hash(client, admin):
    made = issue(client, admin, "alpha")
    key = made["key"]
    assert re.fullmatch(r"zq_[0-9a-f]{16}_[0-9a-f]{64}", key)
    assert made["project"] == "alpha" and made["roles"] == ["member"]
    assert made["expires"] is None and made["revoked"] is False
    shown = ask(client, "GET", f"/v2/keys/{made['id']}", admin).json_body
    listed = ask(client, "GET", "/v2/keys?project=alpha", admin).json_body["keys"]
    assert [entry["id"] for entry in listed] == [made["id"]]
    for seen in (shown, *listed):
        assert "key" not in seen and key not in str(seen)
    items = boto3.client("dynamodb", region_name="us-east-1").scan(
        TableName="zaqar-dev-keys")["Items"]
    assert key not in str(items)
    [item] = [item for item in items if item["i"]["S"] == made["id"]]
    assert item["d"]["S"] == hmac.new(PEPPER.encode(), key.encode(), hashlib.sha256).hexdigest()


def test_a_key_acts_for_its_project_and_no_other(client, admin):
    key = issue(client, admin, "alpha")["key"]
    other = issue(client, admin, "beta")["key"]
    assert ask(client, "PUT", "/v2/queues/mine", key, {}).status_code == 201
    assert ask(client, "PUT", "/v2/queues/theirs", other, {}).status_code == 201
    for bearer in (False, True):
        listed = ask(client, "GET", "/v2/queues", key, bearer=bearer)
        assert listed.status_code == 200
        assert [queue["name"] for queue in listed.json_body["queues"]] == ["mine"]
    named = ask(client, "GET", "/v2/queues", key, **{"X-Project-ID": "beta"})
    assert named.status_code == 403
    assert ask(client, "POST", "/v2/queues/theirs/messages", other,
               {"messages": [{"body": "beta's"}]}).status_code == 201
    read = ask(client, "GET", "/v2/queues/theirs/messages?echo=true", key)
    assert "beta's" not in read.body.decode()
    # X-Roles is not believed, and only admins manage keys.
    assert ask(client, "GET", "/v2/keys?project=alpha", key,
               **{"X-Roles": "admin"}).status_code == 403
    assert ask(client, "GET", "/v2/health", key, **{"X-Roles": "admin"}).status_code == 403


@pytest.mark.parametrize("key", [
    "zq_", "zq_0123456789abcdef_" + "0" * 64, "zq_nothex_" + "a" * 64, "zq_" + "a" * 200])
def test_a_key_that_is_no_issued_key_gets_401(client, admin, key):
    answer = ask(client, "GET", "/v2/queues", key)
    assert answer.status_code == 401
    assert answer.json_body["title"] == "Unauthorized"


def test_a_key_with_the_right_id_and_another_secret_gets_401(client, admin):
    key = issue(client, admin, "alpha")["key"]
    forged = key[:20] + ("0" if key[20] != "0" else "1") + key[21:]
    assert ask(client, "GET", "/v2/queues", forged).status_code == 401
    assert ask(client, "GET", "/v2/queues", key).status_code == 200


def test_a_revoked_key_gets_401_within_the_cache_bound(client, admin, stage, clock):
    made = issue(client, admin, "alpha")
    assert ask(client, "GET", "/v2/queues", made["key"]).status_code == 200
    # Revoked through another function (another Lambda's cache holds it).
    assert dynamodb.driver(stage()).keys.revoke(made["id"]) is True
    assert ask(client, "GET", "/v2/queues", made["key"]).status_code == 200
    clock.advance(apikey.MAX_CACHE_SECONDS + 1)
    assert ask(client, "GET", "/v2/queues", made["key"]).status_code == 401


def test_a_key_revoked_through_the_route_stops_at_once_here(client, admin):
    made = issue(client, admin, "alpha")
    assert ask(client, "GET", "/v2/queues", made["key"]).status_code == 200
    assert ask(client, "DELETE", f"/v2/keys/{made['id']}", admin).status_code == 204
    assert ask(client, "GET", "/v2/queues", made["key"]).status_code == 401
    assert ask(client, "GET", f"/v2/keys/{made['id']}", admin).json_body["revoked"] is True
    assert ask(client, "DELETE", "/v2/keys/0123456789abcdef", admin).status_code == 404


def test_an_expired_key_gets_401(client, admin, clock):
    made = issue(client, admin, "alpha", ttl=60)
    assert made["expires"] == made["created"] + 60_000
    assert ask(client, "GET", "/v2/queues", made["key"]).status_code == 200
    clock.advance(61)
    assert ask(client, "GET", "/v2/queues", made["key"]).status_code == 401


def test_last_use_is_written_at_most_once_a_minute(client, admin, stage, clock,
                                                   monkeypatch):
    stage(api_key_cache_seconds=0)  # every request reads the key
    made = issue(client, admin, "alpha")
    writes, original = [], key_store.record_use

    def counted(key_id, *args):
        if key_id == made["id"]:
            writes.append(args)
        return original(key_id, *args)
    monkeypatch.setattr(key_store, "record_use", counted)
    started = clock.now
    for _ in range(5):
        assert ask(client, "GET", "/v2/queues", made["key"]).status_code == 200
        clock.advance(10)
    shown = ask(client, "GET", f"/v2/keys/{made['id']}", admin).json_body
    assert shown["last_used"] == started and len(writes) == 1
    clock.advance(20)  # 70 s after the first use
    assert ask(client, "GET", "/v2/queues", made["key"]).status_code == 200
    shown = ask(client, "GET", f"/v2/keys/{made['id']}", admin).json_body
    assert shown["last_used"] == started + 70_000 and len(writes) == 2


def test_the_admin_routes_check_what_they_are_given(client, admin, stage):
    for body in ({"project": "a", "roles": "member", "name": "x"},
                 {"project": "a", "roles": ["a,b"], "name": "x"},
                 {"project": "", "roles": [], "name": "x"},
                 {"project": "a", "roles": [], "name": "x", "ttl": 5},
                 {"project": "a", "roles": [], "name": "x", "owner": "me"},
                 # would name project a's topics (storage.base.TOPIC_SPACE)
                 {"project": "a/~topics", "roles": ["member"], "name": "x"}):
        assert ask(client, "POST", "/v2/keys", admin, body).status_code == 400, body
    assert ask(client, "GET", "/v2/keys", admin).status_code == 400  # which project?
    assert ask(client, "GET", "/v2/keys/../x", admin).status_code in (403, 404)
    assert ask(client, "GET", "/v2/keys/not-an-id", admin).status_code == 404


def test_a_stage_without_apikey_refuses_keys_without_asking_keystone(client, admin, stage):
    stage(auth_strategy="keystone")
    # A key goes to no mode of this stage: 401, not Keystone's 503.
    assert ask(client, "GET", "/v2/queues", admin).status_code == 401
    # Anything else is Keystone's, which cannot be asked here.
    assert ask(client, "GET", "/v2/queues", "gAAAAABtoken").status_code == 503


def test_each_credential_goes_to_the_mode_its_form_names():
    assert auth.mode_of("zq_0123456789abcdef_" + "0" * 64) == "apikey"
    assert auth.mode_of("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln") == "jwt"
    assert auth.mode_of("gAAAAABkeystone-fernet_token") == "keystone"
    assert auth.mode_of("a.b") == "keystone"


@pytest.mark.parametrize("changes, complaint", [
    ({"auth_strategy": "noauth,apikey"}, "must be keystone or noauth, or a comma list"),
    ({"auth_strategy": "apikey,ldap", "api_key_secret": "s"}, "not 'apikey,ldap'"),
    ({"auth_strategy": "apikey"}, "needs API_KEY_SECRET"),
    ({"auth_strategy": "apikey", "api_key_secret": "s", "api_key_secret_parameter": "/p"},
     "one, not both"),
    ({"auth_strategy": "apikey", "api_key_secret": "s", "api_key_cache_seconds": 300},
     "API_KEY_CACHE_SECONDS must be 0 to 60"),
    ({"auth_strategy": "jwt", "jwt_issuer": "https://id.example"}, "needs JWT_ISSUER and"),
    ({"auth_strategy": "jwt", "jwt_issuer": "http://id.example", "jwt_audience": "a"},
     "must be https"),
    ({"auth_strategy": "keystone,jwt", "jwt_issuer": "https://id.example",
      "jwt_audience": "a"}, "needs KEYSTONE_URL"),
])
def test_settings_of_modes_no_request_could_be_served_with_are_refused(changes, complaint):
    with pytest.raises(Misconfigured, match=re.escape(complaint)):
        check_settings(dataclasses.replace(Settings(stage="prod"), **changes))


def test_modes_combine():
    check_settings(Settings(auth_strategy="keystone, apikey,jwt",
                            keystone_url="https://keystone.example/v3",
                            api_key_secret_parameter="/zaqar/prod/api-key-secret",
                            jwt_issuer="https://cognito-idp.eu-west-1.amazonaws.com/pool",
                            jwt_audience="client-1"))
    check_settings(Settings(auth_strategy="jwt", jwt_issuer="http://127.0.0.1:9",
                            jwt_audience="a"))

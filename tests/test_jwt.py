"""OIDC/JWT tokens (auth/oidc.py) through the Chalice test client on moto,
against the tests' own issuer (tests/support/oidc.py: RSA keys made here,
its JWKS served on 127.0.0.1): a good token lands in the project its claim
names, with its roles; a bad signature, the wrong issuer or audience, a
past exp, a future nbf, alg none or HS256 are refused; rotated keys are
fetched once, and not on every unknown key id."""
import dataclasses
import json
import time

import pytest

from chalicelib import config, rest
from chalicelib.auth import oidc
from conftest import CLIENT_ID
from local.oidc_issuer import AUDIENCE, Issuer, new_key


@pytest.fixture
def issuer():
    server = Issuer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def fresh_keys(monkeypatch):
    monkeypatch.setattr(oidc, "_jwks", {})


@pytest.fixture
def stage(monkeypatch, issuer):
    dev = config.get_settings
    changes = {"auth_strategy": "jwt", "jwt_issuer": issuer.url, "jwt_audience": AUDIENCE}

    def use(**more):
        changes.update(more)
    monkeypatch.setattr(rest, "get_settings", lambda: dataclasses.replace(dev(), **changes))
    return use


def ask(client, token, method="GET", path="/v2/queues", body=None, bearer=True, **extra):
    headers = {"Client-ID": CLIENT_ID, "Content-Type": "application/json", **extra}
    if bearer:
        headers["Authorization"] = f"Bearer {token}"
    else:
        headers["X-Auth-Token"] = token
    return client.http.request(method, path, headers=headers,
                               body=b"" if body is None else json.dumps(body))


def test_a_token_of_the_issuer_lands_in_its_project_with_its_roles(client, issuer, stage):
    token = issuer.token(project="p-web", roles=["member"])
    assert ask(client, token, "PUT", "/v2/queues/jq", {}).status_code == 201
    for bearer in (True, False):  # Authorization: Bearer, or X-Auth-Token
        listed = ask(client, token, bearer=bearer)
        assert [queue["name"] for queue in listed.json_body["queues"]] == ["jq"]
    other = ask(client, issuer.token(project="p-other"))
    assert other.json_body["queues"] == []
    # A claim naming a project's topic space names no project.
    slashed = ask(client, issuer.token(project="p-web/~topics"))
    assert (slashed.status_code, slashed.json_body["title"]) == (400, "Project-Id Missing")
    assert ask(client, token, **{"X-Project-ID": "p-other"}).status_code == 403
    assert ask(client, token, path="/v2/health").status_code == 403
    admin = issuer.token(project="p-web", roles=["admin"])
    assert ask(client, admin, path="/v2/health").status_code == 200


def test_cognito_access_tokens_name_their_client_and_carry_groups_as_a_list(
        client, issuer, stage):
    token = issuer.token(aud=None, client_id=AUDIENCE, token_use="access",
                         scope="openid", project="p-cognito")
    assert ask(client, token).status_code == 200
    assert ask(client, issuer.token(aud=None, client_id="another-app")).status_code == 401


def test_claims_and_clock_skew(client, issuer, stage):
    now = time.time()
    assert ask(client, issuer.token(exp=int(now) - 30)).status_code == 200  # within skew
    assert ask(client, issuer.token(nbf=int(now) + 30)).status_code == 200
    stage(jwt_project_claim="tenant", jwt_roles_claim="roles")
    token = issuer.token(claims={**issuer.claims(roles=()), "tenant": "p-t",
                                 "roles": "admin member"})
    assert ask(client, token, path="/v2/health").status_code == 200


@pytest.mark.parametrize("make", [
    lambda issuer: issuer.token(key=new_key()),  # signed by another key, same kid
    lambda issuer: issuer.token(iss="https://evil.example"),
    lambda issuer: issuer.token(aud="another-app"),
    lambda issuer: issuer.token(aud=["another-app", "a-third"]),
    lambda issuer: issuer.token(exp=int(time.time()) - 120),
    lambda issuer: issuer.token(exp=None),
    lambda issuer: issuer.token(exp="never"),
    lambda issuer: issuer.token(claims={**issuer.claims(), "exp": float("inf")}),
    lambda issuer: issuer.token(nbf=int(time.time()) + 120),
    lambda issuer: issuer.unsigned(),
    lambda issuer: issuer.hs256_with_public_key(),
    lambda issuer: issuer.token(alg="RS512"),
    lambda issuer: issuer.token(kid="unknown", key=issuer.keys["key-1"]),
    lambda issuer: issuer.token()[:-4] + "AAAA",  # a signature changed
    lambda issuer: issuer.token().rsplit(".", 1)[0] + ".",  # none at all
    lambda issuer: "e30.e30.e30",  # {} . {} . {}
], ids=["bad-signature", "wrong-iss", "wrong-aud", "wrong-aud-list", "past-exp", "no-exp",
        "odd-exp", "infinite-exp", "future-nbf", "alg-none", "hs256-confusion", "rs512",
        "unknown-kid", "changed-signature", "no-signature", "empty"])
def test_a_token_this_stage_does_not_believe_gets_401(client, issuer, stage, make):
    answer = ask(client, make(issuer))
    assert answer.status_code == 401
    assert answer.json_body["title"] == "Unauthorized"


def test_rotated_keys_are_fetched_and_unknown_ids_do_not_hammer_the_issuer(
        client, issuer, stage, clock):
    assert ask(client, issuer.token()).status_code == 200
    assert ask(client, issuer.token()).status_code == 200
    assert issuer.fetches == 1  # kept
    issuer.rotate()
    clock.advance(oidc.REFETCH_MIN_MS / 1000)
    assert ask(client, issuer.token()).status_code == 200  # the new key id: fetched again
    assert issuer.fetches == 2
    for _ in range(5):
        assert ask(client, issuer.token(kid="made-up", key=new_key())).status_code == 401
    assert issuer.fetches == 2  # not within REFETCH_MIN_MS of the last fetch
    clock.advance(3600)
    assert ask(client, issuer.token()).status_code == 200
    assert issuer.fetches == 3  # stale after jwt_jwks_cache_seconds


def test_an_issuer_out_of_reach_is_a_503_until_its_keys_were_read_once(
        client, issuer, stage, clock):
    issuer.down = True
    answer = ask(client, issuer.token())
    assert answer.status_code == 503
    assert answer.json_body["description"].startswith("The token issuer's keys could not be read")
    issuer.down = False
    assert ask(client, issuer.token()).status_code == 200
    # Down when its keys are due again: they serve on, and it is asked again
    # only REFETCH_MIN_MS later.
    issuer.down = True
    clock.advance(3600)
    assert ask(client, issuer.token()).status_code == 200
    assert ask(client, issuer.token()).status_code == 200
    issuer.down = False
    fetches = issuer.fetches
    clock.advance(oidc.REFETCH_MIN_MS / 1000)
    assert ask(client, issuer.token()).status_code == 200
    assert issuer.fetches == fetches + 1


def test_the_signature_check_is_rfc_8017s():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    key = new_key()
    numbers = key.public_key().public_numbers()
    signature = key.sign(b"data", padding.PKCS1v15(), hashes.SHA256())
    assert oidc.rs256_valid(b"data", signature, numbers.n, numbers.e)
    assert not oidc.rs256_valid(b"date", signature, numbers.n, numbers.e)
    assert not oidc.rs256_valid(b"data", signature[1:], numbers.n, numbers.e)
    assert not oidc.rs256_valid(b"data", b"\xff" * len(signature), numbers.n, numbers.e)
    # The same digest in another encoding (SHA-512's, PSS) is not RS256.
    for other in (key.sign(b"data", padding.PKCS1v15(), hashes.SHA512()),
                  key.sign(b"data", padding.PSS(padding.MGF1(hashes.SHA256()), 32),
                           hashes.SHA256())):
        assert not oidc.rs256_valid(b"data", other, numbers.n, numbers.e)

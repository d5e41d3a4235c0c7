"""API keys and OIDC/JWT tokens end to end: the local runner taking Keystone
tokens, API keys and the tests' own issuer's JWTs at once (the issuer's
RSA keys made by the test, its JWKS served on 127.0.0.1), keys issued
through `python -m local.keys`, clients over real HTTP and WebSocket,
python-zaqarclient unchanged. The cross-project probes of
test_keystone_auth.py run with alpha's key and with alpha's JWT.

Then a runner for each mode alone, as `make run AUTH=apikey` (its first
admin key bootstrapped into its table) and `make run AUTH=jwt JWT_ISSUER=...`
start it.
"""
import json
import subprocess
import sys
import time
import uuid

import boto3
import pytest
import requests
import websocket
from zaqarclient.queues.v2 import client as zaqar_client

from conftest import CLIENT_ID
from local import keystone as local_keystone
from local.launch import ROOT as ROOT_DIR
from local.oidc_issuer import AUDIENCE, new_key
from tests.e2e.conftest import launch
from tests.e2e.probes import ALPHA, BETA, ask, beta_state, rest_leaks, websocket_leaks


@pytest.fixture(scope="module")
def runner(keystone, oidc_issuer, tmp_path_factory):
    clock_file = tmp_path_factory.mktemp("apikey-jwt-runner") / "clock-offset"
    with launch("--auth", "keystone,apikey,jwt", "--keystone-url", keystone.url,
                "--jwt-issuer", oidc_issuer.url, "--jwt-audience", AUDIENCE,
                clock_file=clock_file) as started:
        yield started


def keys_cli(runner, credential, *words):
    """`python -m local.keys` against the runner: (exit status, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "local.keys", "--url", runner.url,
                           "--token", credential, *words], cwd=ROOT_DIR,
                          capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def admin_token(tokens):
    return tokens(local_keystone.ADMIN)


@pytest.fixture(scope="module")
def alpha_key(runner, admin_token, project_of):
    """A member key of alpha's project, issued through the CLI."""
    status, out, err = keys_cli(runner, admin_token, "create", "--project",
                                project_of(ALPHA), "--role", "member", "--name", "alpha-ci")
    assert status == 0, err
    return out.splitlines()[0]


@pytest.fixture(scope="module")
def alpha_jwt(oidc_issuer, project_of):
    return oidc_issuer.token(project=project_of(ALPHA), roles=["member"])


@pytest.fixture(params=["apikey", "jwt"])
def alpha_credential(request, alpha_key, alpha_jwt):
    return alpha_key if request.param == "apikey" else alpha_jwt


def test_only_an_admin_issues_keys_and_a_key_is_shown_once(runner, admin_token, tokens,
                                                           project_of):
    status, _, err = keys_cli(runner, tokens(ALPHA), "create", "--project",
                              project_of(ALPHA), "--role", "admin", "--name", "self-made")
    assert status != 0 and "403" in err
    status, out, _ = keys_cli(runner, admin_token, "create", "--project", project_of(ALPHA),
                              "--role", "member", "--name", "shown-once")
    assert status == 0
    key = out.splitlines()[0]
    status, out, _ = keys_cli(runner, admin_token, "list", "--project", project_of(ALPHA))
    listed = json.loads(out)
    assert "shown-once" in [entry["name"] for entry in listed]
    assert key not in out


def test_a_key_of_alpha_works_in_alpha_as_either_header(runner, alpha_key, tokens):
    queue = f"keyed-{uuid.uuid4().hex[:8]}"
    assert ask(runner, "PUT", f"/v2/queues/{queue}", alpha_key, {}).status_code == 201
    bearer = requests.get(f"{runner.url}/v2/queues", timeout=30, headers={
        "Client-ID": CLIENT_ID, "Authorization": f"Bearer {alpha_key}"})
    assert queue in [entry["name"] for entry in bearer.json()["queues"]]
    # The same project as alpha's Keystone token.
    listed = ask(runner, "GET", "/v2/queues", tokens(ALPHA)).json()["queues"]
    assert queue in [entry["name"] for entry in listed]


def test_a_jwt_lands_in_the_project_its_claim_names(runner, oidc_issuer, alpha_key):
    project = f"web-{uuid.uuid4().hex[:8]}"
    token = oidc_issuer.token(project=project, roles=["member"])
    assert ask(runner, "PUT", "/v2/queues/from-the-browser", token, {}).status_code == 201
    own = requests.get(f"{runner.url}/v2/queues", timeout=30, headers={
        "Client-ID": CLIENT_ID, "Authorization": f"Bearer {token}"}).json()["queues"]
    assert [entry["name"] for entry in own] == ["from-the-browser"]
    alphas = ask(runner, "GET", "/v2/queues", alpha_key).json()["queues"]
    assert "from-the-browser" not in [entry["name"] for entry in alphas]
    assert ask(runner, "GET", "/v2/queues", token,
               **{"X-Project-ID": "someone"}).status_code == 403


@pytest.mark.parametrize("make", [
    lambda issuer: issuer.token(key=new_key()),
    lambda issuer: issuer.token(aud="another-app"),
    lambda issuer: issuer.token(iss="http://127.0.0.1:9"),
    lambda issuer: issuer.token(exp=1_000_000_000),
    lambda issuer: issuer.unsigned(),
    lambda issuer: issuer.hs256_with_public_key(),
], ids=["bad-signature", "wrong-aud", "wrong-iss", "past-exp", "alg-none", "hs256"])
def test_a_jwt_the_stage_does_not_believe_gets_401(runner, oidc_issuer, make):
    answer = ask(runner, "GET", "/v2/queues", make(oidc_issuer))
    assert answer.status_code == 401
    assert answer.json()["title"] == "Unauthorized"


def test_a_credential_of_alpha_reaches_nothing_of_betas_over_rest(
        runner, alpha_credential, tokens, project_of, beta_resources):
    before = beta_state(runner, tokens, beta_resources)
    assert rest_leaks(runner, alpha_credential, project_of(BETA), beta_resources) == []
    assert beta_state(runner, tokens, beta_resources) == before


def test_a_credential_of_alpha_reaches_nothing_of_betas_over_the_websocket(
        runner, alpha_credential, tokens, project_of, beta_resources):
    before = beta_state(runner, tokens, beta_resources)
    assert websocket_leaks(runner, alpha_credential, project_of(ALPHA), project_of(BETA),
                           beta_resources) == []
    assert beta_state(runner, tokens, beta_resources) == before


def test_python_zaqarclient_with_an_api_key(runner, alpha_key):
    """zaqarclient's keystone backend with os_auth_token and an endpoint
    sends the key as X-Auth-Token without calling Keystone."""
    cli = zaqar_client.Client(url=runner.url, version=2, conf={
        "client_uuid": CLIENT_ID,
        "auth_opts": {"backend": "keystone", "options": {"os_auth_token": alpha_key}}})
    queue = cli.queue(f"zc-key-{uuid.uuid4().hex[:8]}")
    queue.post([{"body": {"n": n}, "ttl": 300} for n in range(3)])
    assert sorted(m.body["n"] for m in queue.messages(echo=True)) == [0, 1, 2]
    claimed = list(queue.claim(ttl=60, grace=60, limit=2))
    assert len(claimed) == 2
    for message in claimed:
        message.delete()
    assert len(list(queue.messages(echo=True))) == 1
    queue.delete()


def test_a_revoked_key_gets_401_over_rest_and_the_websocket(runner, admin_token, project_of):
    status, out, _ = keys_cli(runner, admin_token, "create", "--project", project_of(ALPHA),
                              "--role", "member", "--name", "to-revoke")
    key = out.splitlines()[0]
    assert ask(runner, "GET", "/v2/queues", key).status_code == 200
    key_id = key.split("_")[1]
    assert keys_cli(runner, admin_token, "revoke", key_id)[0] == 0
    # The runner is one function: its cache forgets the key at once (others
    # within API_KEY_CACHE_SECONDS, tests/test_apikey.py).
    assert ask(runner, "GET", "/v2/queues", key).status_code == 401
    connection = websocket.create_connection(runner.ws_url, timeout=30)
    try:
        connection.send(json.dumps({"action": "authenticate", "body": {}, "headers": {
            "Client-ID": CLIENT_ID, "X-Project-ID": project_of(ALPHA), "X-Auth-Token": key}}))
        assert json.loads(connection.recv())["headers"]["status"] == 401
    finally:
        connection.close()


def test_an_expired_key_and_jwt_get_401(runner, admin_token, oidc_issuer, project_of):
    """Last in this module: it moves the runner's clock."""
    status, out, _ = keys_cli(runner, admin_token, "create", "--project", project_of(ALPHA),
                              "--role", "member", "--name", "short", "--expires", "60")
    key = out.splitlines()[0]
    token = oidc_issuer.token(project=project_of(ALPHA), exp=int(time.time()) + 60)
    assert ask(runner, "GET", "/v2/queues", key).status_code == 200
    assert ask(runner, "GET", "/v2/queues", token).status_code == 200
    runner.advance(61 + 60)  # past the key's expiry, and the token's with its skew
    assert ask(runner, "GET", "/v2/queues", key).status_code == 401
    assert ask(runner, "GET", "/v2/queues", token).status_code == 401


# -- each mode alone ---------------------------------------------------------

def test_make_run_auth_apikey_with_a_bootstrapped_admin_key(dynamodb_endpoint, tmp_path):
    """`make run AUTH=apikey`: no Keystone; the first admin key is written
    into the stage's table by `python -m local.keys bootstrap`. A key
    revoked by another function (here: in the table itself) stops working
    within the cache bound, 60 s on the runner's clock."""
    if dynamodb_endpoint is None:
        pytest.skip("moto in this process cannot be shared with the runner and the CLI")
    with launch("--auth", "apikey", "--dynamodb-endpoint", dynamodb_endpoint,
                clock_file=tmp_path / "clock-offset") as alone:
        done = subprocess.run(
            [sys.executable, "-m", "local.keys", "bootstrap", "--project", "ops",
             "--name", "first-admin", "--dynamodb-endpoint", dynamodb_endpoint],
            cwd=ROOT_DIR, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        admin = done.stdout.splitlines()[0]
        status, out, err = keys_cli(alone, admin, "create", "--project", "team-a",
                                    "--role", "member", "--name", "svc")
        assert status == 0, err
        key = out.splitlines()[0]
        assert ask(alone, "PUT", "/v2/queues/jobs", key, {}).status_code == 201
        listed = ask(alone, "GET", "/v2/queues", key).json()["queues"]
        assert [entry["name"] for entry in listed] == ["jobs"]
        assert ask(alone, "GET", "/v2/queues", admin).json()["queues"] == []  # ops'
        # No Keystone here: anything but a key is refused, not a 503.
        assert ask(alone, "GET", "/v2/queues", "gAAAAABsome-token").status_code == 401
        boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1",
                     aws_access_key_id="local", aws_secret_access_key="local").update_item(
            TableName="zaqar-dev-keys", Key={"i": {"S": key.split("_")[1]}},
            UpdateExpression="SET rv = :revoked",
            ExpressionAttributeValues={":revoked": {"BOOL": True}})
        assert ask(alone, "GET", "/v2/queues", key).status_code == 200  # believed a while
        alone.advance(61)
        assert ask(alone, "GET", "/v2/queues", key).status_code == 401


def test_make_run_auth_jwt_with_an_issuer(oidc_issuer):
    """`make run AUTH=jwt JWT_ISSUER=...` (the audience defaults to zaqar)."""
    with launch("--auth", "jwt", "--jwt-issuer", oidc_issuer.url) as alone:
        token = oidc_issuer.token(project="web", aud="zaqar")
        assert ask(alone, "PUT", "/v2/queues/q", token, {}).status_code == 201
        assert ask(alone, "GET", "/v2/queues", oidc_issuer.token(project="web")
                   ).status_code == 401  # another audience
        assert ask(alone, "GET", "/v2/queues", "zq_" + "0" * 81).status_code == 401

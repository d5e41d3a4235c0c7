"""Keystone authentication end to end: a real Keystone (local/keystone.py),
the local runner in keystone mode in front of it, and clients talking over
real HTTP and WebSocket: python-zaqarclient with password auth, raw HTTP,
plain websocket frames.

The cross-project probes are tests/e2e/probes.py's, run here with alpha's
Keystone token (and by test_apikey_jwt_auth.py with alpha's key and JWT).
"""
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import websocket
from zaqarclient.queues.v2 import client as zaqar_client

from conftest import CLIENT_ID
from local import keystone as local_keystone
from tests.e2e.conftest import launch
from tests.e2e.probes import (
    ALPHA,
    BETA,
    SECRET,
    ask,
    beta_state,
    rest_leaks,
    websocket_leaks,
)

UNAUTHORIZED = {"title": "Unauthorized",
                "description": "The request you have made requires authentication."}


@pytest.fixture(scope="module")
def runner(keystone, tmp_path_factory):
    clock_file = tmp_path_factory.mktemp("keystone-runner") / "clock-offset"
    # Keystone beside API keys, as a stage that issues keys runs: Keystone's
    # tokens go to Keystone, and the probes reach the keys' routes too.
    with launch("--auth", "keystone,apikey", "--keystone-url", keystone.url,
                "--schedule-interval", "2", clock_file=clock_file) as started:
        local_keystone.register_messaging_endpoint(keystone, started.url)
        yield started


# -- who may call -----------------------------------------------------------

def test_no_token_and_a_garbage_token_get_401_pointing_at_keystone(runner, keystone):
    for token in (None, "", "not-a-token", "gAAAAAB" + "x" * 180):
        answer = ask(runner, "GET", "/v2/queues", token)
        assert answer.status_code == 401, token
        assert answer.json() == UNAUTHORIZED
        assert answer.headers["WWW-Authenticate"] == f'Keystone uri="{keystone.url}"'


def test_a_revoked_token_gets_401(runner, keystone):
    token, _ = local_keystone.issue_token(keystone.url, ALPHA.name, ALPHA.password,
                                          ALPHA.project)
    local_keystone.revoke(keystone.url, token)
    assert ask(runner, "GET", "/v2/queues", token).status_code == 401


def test_the_versions_document_is_open(runner):
    assert ask(runner, "GET", "/").status_code == 300


def test_the_project_comes_from_the_token(runner, tokens, project_of):
    queue = f"mine-{uuid.uuid4().hex[:8]}"
    assert ask(runner, "PUT", f"/v2/queues/{queue}", tokens(ALPHA), {}).status_code == 201
    listed = ask(runner, "GET", "/v2/queues", tokens(ALPHA)).json()["queues"]
    assert queue in [entry["name"] for entry in listed]
    # The same project named again is fine; another is refused.
    named = ask(runner, "GET", "/v2/queues", tokens(ALPHA),
                **{"X-Project-ID": project_of(ALPHA)})
    assert named.status_code == 200
    other = ask(runner, "GET", "/v2/queues", tokens(ALPHA), **{"X-Project-ID": "someone"})
    assert other.status_code == 403
    beta_listed = ask(runner, "GET", "/v2/queues", tokens(BETA)).json()["queues"]
    assert queue not in [entry["name"] for entry in beta_listed]


def test_roles_x_roles_is_ignored_and_admin_routes_need_admin(runner, tokens):
    member = ask(runner, "GET", "/v2/health", tokens(ALPHA), **{"X-Roles": "admin"})
    assert member.status_code == 403
    assert member.json()["title"] == "Not authorized"
    admin = ask(runner, "GET", "/v2/health", tokens(local_keystone.ADMIN))
    assert admin.status_code == 200
    assert admin.json()["storage_reachable"] is True
    # Zaqar's default policy lets any role use the data plane.
    reader = local_keystone.USERS["alpha-reader"]
    assert ask(runner, "GET", "/v2/queues", tokens(reader)).status_code == 200


def shared_queue(runner, tokens, queue):
    """A queue of beta's holding SECRET, and a signature that lets GET its messages."""
    ask(runner, "PUT", f"/v2/queues/{queue}", tokens(BETA), {})
    ask(runner, "POST", f"/v2/queues/{queue}/messages", tokens(BETA),
        {"messages": [{"body": SECRET}]})
    signed = ask(runner, "POST", f"/v2/queues/{queue}/share", tokens(BETA),
                 {"methods": ["GET"]}).json()
    return signed


def test_a_signed_url_works_without_a_token_for_its_project_only(runner, tokens):
    queue = f"signed-{uuid.uuid4().hex[:8]}"
    signed = shared_queue(runner, tokens, queue)
    signature = {"URL-Signature": signed["signature"], "URL-Expires": signed["expires"],
                 "URL-Methods": ",".join(signed["methods"]),
                 "URL-Paths": ",".join(signed["paths"])}
    read = ask(runner, "GET", f"/v2/queues/{queue}/messages?echo=true",
               **{**signature, "X-Project-ID": signed["project"]})
    assert read.status_code == 200
    assert [message["body"] for message in read.json()["messages"]] == [SECRET]
    # The same signature for another project, or another method, opens nothing.
    elsewhere = ask(runner, "GET", f"/v2/queues/{queue}/messages?echo=true",
                    **{**signature, "X-Project-ID": "someone-else"})
    assert elsewhere.status_code == 404
    deleting = ask(runner, "DELETE", f"/v2/queues/{queue}",
                   **{**signature, "X-Project-ID": signed["project"]})
    assert deleting.status_code == 404


def test_python_zaqarclient_with_keystone_password_auth(runner, keystone):
    """The client finds the service in Keystone's catalog (service type
    messaging), gets a token with the user's password and uses it."""
    conf = {"auth_opts": {"backend": "keystone", "options": {
        "os_auth_url": keystone.url, "os_username": ALPHA.name, "os_password": ALPHA.password,
        "os_project_name": ALPHA.project, "os_user_domain_name": "Default",
        "os_project_domain_name": "Default"}}}
    cli = zaqar_client.Client(url=None, version=2, conf=conf)
    queue = cli.queue(f"zc-{uuid.uuid4().hex[:8]}")
    queue.post([{"body": {"n": n}, "ttl": 300} for n in range(3)])
    assert sorted(m.body["n"] for m in queue.messages(echo=True)) == [0, 1, 2]
    claim = queue.claim(ttl=60, grace=60, limit=2)
    claimed = list(claim)
    assert len(claimed) == 2
    for message in claimed:
        message.delete()
    assert [m.body["n"] for m in queue.messages(echo=True)] == [
        n for n in range(3) if n not in {m.body["n"] for m in claimed}]
    queue.delete()


# -- no project reaches another's ------------------------------------------

def test_a_token_of_alpha_reaches_nothing_of_betas_over_rest(runner, tokens, project_of,
                                                             beta_resources):
    before = beta_state(runner, tokens, beta_resources)
    assert rest_leaks(runner, tokens(ALPHA), project_of(BETA), beta_resources) == []
    assert beta_state(runner, tokens, beta_resources) == before


def test_a_token_of_alpha_reaches_nothing_of_betas_over_the_websocket(
        runner, tokens, project_of, beta_resources):
    before = beta_state(runner, tokens, beta_resources)
    assert websocket_leaks(runner, tokens(ALPHA), project_of(ALPHA), project_of(BETA),
                           beta_resources) == []
    assert beta_state(runner, tokens, beta_resources) == before


# -- tokens expire ----------------------------------------------------------

def test_an_expired_token_gets_401_and_its_websocket_is_closed(keystone, tokens, project_of,
                                                               tmp_path):
    """Moving the runner's clock past the token's expiry: the runner's own
    cache must not believe it any longer, over REST and the websocket."""
    clock_file = tmp_path / "clock-offset"
    with launch("--auth", "keystone", "--keystone-url", keystone.url,
                clock_file=clock_file) as own:
        token = tokens(ALPHA)
        assert ask(own, "GET", "/v2/queues", token).status_code == 200
        connection = websocket.create_connection(own.ws_url, timeout=30)
        who = {"Client-ID": CLIENT_ID, "X-Project-ID": project_of(ALPHA)}
        frame = {"action": "queue_list", "body": {}, "headers": who}
        connection.send(json.dumps({**frame, "action": "authenticate",
                                    "headers": {**who, "X-Auth-Token": token}}))
        assert json.loads(connection.recv())["headers"]["status"] == 200
        connection.send(json.dumps(frame))
        assert json.loads(connection.recv())["headers"]["status"] == 200

        own.advance(2 * 3600)
        assert ask(own, "GET", "/v2/queues", token).status_code == 401
        connection.send(json.dumps(frame))
        assert json.loads(connection.recv())["body"] == {"error": "Authentication expired."}
        opcode, _ = connection.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE


def test_the_openstack_messaging_cli(runner, keystone):
    """`openstack messaging`, as an operator runs it: Keystone password auth,
    the service found in the catalog, the project taken from the token (the
    CLI sends no X-Project-ID)."""
    cli = Path(sys.executable).parent / "openstack"
    environment = {**os.environ, "OS_AUTH_URL": keystone.url, "OS_USERNAME": ALPHA.name,
                   "OS_PASSWORD": ALPHA.password, "OS_PROJECT_NAME": ALPHA.project,
                   "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
                   "OS_IDENTITY_API_VERSION": "3", "OS_INTERFACE": "public",
                   "OS_MESSAGE_CLIENT_ID": CLIENT_ID}

    def openstack(*words, table=False):
        command = [str(cli), "messaging", *words, *(["-f", "json"] if table else [])]
        done = subprocess.run(command, env=environment, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if table else None

    queue = f"cli-{uuid.uuid4().hex[:8]}"
    openstack("queue", "create", queue, table=True)
    assert queue in [entry["Name"] for entry in openstack("queue", "list", table=True)]
    openstack("message", "post", queue, json.dumps([{"body": {"n": 1}, "ttl": 300}]))
    [listed] = openstack("message", "list", queue, "--echo", table=True)
    assert listed["Body"] == {"n": 1}
    claimed = openstack("claim", "create", queue, "--ttl", "60", "--grace", "60", table=True)
    # The CLI shows a claimed message's body under "Messages".
    assert [(message["Message_ID"], message["Messages"]) for message in claimed] == [
        (listed["ID"], {"n": 1})]
    # `subscription update --ttl` sends {"subscriber": null, "ttl": 7200,
    # "options": {}} (its --options default): the null leaves the subscriber
    # as is, the {} replaces the options, as on Zaqar.
    created = openstack("subscription", "create", queue, "https://example.com/hook", "3600",
                        "--options", '{"replaced": true}', table=True)
    openstack("subscription", "update", queue, created["ID"], "--ttl", "7200", table=True)
    shown = openstack("subscription", "show", queue, created["ID"], table=True)
    assert (shown["TTL"], shown["Subscriber"], shown["Options"]) == (
        7200, "https://example.com/hook", {})
    openstack("queue", "delete", queue)
    assert queue not in [entry["Name"] for entry in openstack("queue", "list", table=True)]


def test_a_signed_websocket_frame_needs_no_token(runner, tokens):
    """§9.3: a frame carrying a queue's signature (URL-Methods and URL-Paths as
    JSON lists) may use the message actions the signature allows, on that
    queue, without authenticating."""
    queue = f"signed-ws-{uuid.uuid4().hex[:8]}"
    signed = shared_queue(runner, tokens, queue)
    headers = {"Client-ID": CLIENT_ID, "X-Project-ID": signed["project"],
               "URL-Signature": signed["signature"], "URL-Expires": signed["expires"],
               "URL-Methods": signed["methods"], "URL-Paths": signed["paths"]}
    connection = websocket.create_connection(runner.ws_url, timeout=30)
    try:
        def frame(action, odd=None, **body):
            connection.send(json.dumps({"action": action, "headers": {**headers, **(odd or {})},
                                        "body": body}))
            return json.loads(connection.recv())

        listed = frame("message_list", queue_name=queue, echo=True)
        assert listed["headers"]["status"] == 200
        assert [message["body"] for message in listed["body"]["messages"]] == [SECRET]
        # Not a method it signed, not its queue, not a message action.
        for action, body in [("message_post", {"queue_name": queue,
                                               "messages": [{"body": 1}]}),
                             ("message_list", {"queue_name": "another"}),
                             ("queue_delete", {"queue_name": queue})]:
            assert frame(action, **body)["headers"]["status"] == 403, action
        # Signature headers of other types are refused the same way.
        for odd in ({"URL-Methods": [1]}, {"URL-Signature": 5}, {"URL-Paths": None}):
            assert frame("message_list", odd, queue_name=queue)["headers"]["status"] == 403, odd
    finally:
        connection.close()

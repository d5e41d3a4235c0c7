"""Keystone authentication end to end: a real Keystone (local/keystone.py),
the local runner in keystone mode in front of it, and clients talking over
real HTTP and WebSocket: python-zaqarclient with password auth, raw HTTP,
plain websocket frames.

The probes walk the app's own route table and the websocket's action table,
so a route or action added later is probed without anyone remembering to.
"""
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
import websocket
from zaqarclient.queues.v2 import client as zaqar_client

from conftest import CLIENT_ID
from local import keystone as local_keystone
from tests.e2e.conftest import launch

UNAUTHORIZED = {"title": "Unauthorized",
                "description": "The request you have made requires authentication."}
ALPHA, BETA = local_keystone.USERS["alpha-member"], local_keystone.USERS["beta-member"]
SECRET = "beta's secret"


@pytest.fixture(scope="module")
def runner(keystone, tmp_path_factory):
    clock_file = tmp_path_factory.mktemp("keystone-runner") / "clock-offset"
    with launch("--auth", "keystone", "--keystone-url", keystone.url,
                "--schedule-interval", "2", clock_file=clock_file) as started:
        local_keystone.register_messaging_endpoint(keystone, started.url)
        yield started


@pytest.fixture(scope="module")
def issued(keystone):
    """{user name: (project-scoped token, its document)}, each issued once."""
    found = {}

    def issue(user):
        if user.name not in found:
            found[user.name] = local_keystone.issue_token(
                keystone.url, user.name, user.password, user.project)
        return found[user.name]
    return issue


@pytest.fixture(scope="module")
def tokens(issued):
    return lambda user: issued(user)[0]


@pytest.fixture(scope="module")
def project_of(issued):
    """A user's project id, as Keystone has it."""
    return lambda user: issued(user)[1]["token"]["project"]["id"]


def ask(runner, method, path, token=None, body=None, **extra):
    headers = {"Client-ID": CLIENT_ID, "Content-Type": "application/json", **extra}
    if token is not None:
        headers["X-Auth-Token"] = token
    return requests.request(method, f"{runner.url}{path}", headers=headers, timeout=30,
                            data=None if body is None else json.dumps(body))


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

@pytest.fixture(scope="module")
def beta_resources(runner, tokens):
    """A queue of beta's with metadata, a message, a claim on another and a
    subscription: what alpha's probes must not reach."""
    queue = f"beta-{uuid.uuid4().hex[:8]}"
    token = tokens(BETA)
    assert ask(runner, "PUT", f"/v2/queues/{queue}", token, {"secret": SECRET}).status_code == 201
    posted = ask(runner, "POST", f"/v2/queues/{queue}/messages", token,
                 {"messages": [{"body": SECRET, "ttl": 3000}, {"body": SECRET, "ttl": 3000}]})
    message_id = posted.json()["resources"][0].rsplit("/", 1)[1]
    claimed = ask(runner, "POST", f"/v2/queues/{queue}/claims?limit=1", token,
                  {"ttl": 3000, "grace": 60})
    claim_id = claimed.headers["Location"].rsplit("/", 1)[1]
    claimed_id = claimed.json()["messages"][0]["href"].rsplit("/", 1)[1]
    subscribed = ask(runner, "POST", f"/v2/queues/{queue}/subscriptions", token,
                     {"subscriber": "http://127.0.0.1:9/beta-hook", "ttl": 3000})
    # And a topic of the same name, with a message and a subscriber of its own.
    topic = f"/v2/topics/{queue}"
    assert ask(runner, "PUT", topic, token, {"secret": SECRET}).status_code == 201
    assert ask(runner, "POST", f"{topic}/messages", token,
               {"messages": [{"body": SECRET, "ttl": 3000}]}).status_code == 201
    assert ask(runner, "POST", f"{topic}/subscriptions", token,
               {"subscriber": "http://127.0.0.1:9/beta-hook", "ttl": 3000}).status_code == 201
    return {"queue_name": queue, "topic_name": queue, "message_id": message_id,
            "claim_id": claim_id, "claimed_id": claimed_id,
            "subscription_id": subscribed.json()["subscription_id"]}


def beta_state(runner, tokens, found):
    """Everything of beta's the probes could change, as beta reads it."""
    token, queue = tokens(BETA), f"/v2/queues/{found['queue_name']}"
    parts = [ask(runner, "GET", queue, token).json(),
             ask(runner, "GET", f"{queue}/messages?echo=true&include_claimed=true",
                 token).json()["messages"],
             ask(runner, "GET", f"{queue}/claims/{found['claim_id']}", token).json()["messages"],
             ask(runner, "GET", f"{queue}/subscriptions/{found['subscription_id']}",
                 token).json()]
    topic = f"/v2/topics/{found['topic_name']}"
    parts += [ask(runner, "GET", topic, token).json(),
              [m["body"] for m in ask(runner, "GET", f"{topic}/messages?echo=true",
                                      token).json()["messages"]],
              [s["subscriber"] for s in ask(runner, "GET", f"{topic}/subscriptions",
                                            token).json()["subscriptions"]]]
    for listing in parts[1:3]:
        for message in listing:
            message.pop("age", None), message.pop("ttl", None)
    parts[3].pop("age", None)
    return parts


BODIES = {  # what a route needs to get past validation to storage
    ("POST", "messages"): {"messages": [{"body": "alpha was here"}]},
    ("POST", "claims"): {"ttl": 100, "grace": 60},
    ("PATCH", "claim_id"): {"ttl": 100},
    ("PUT", "queue_name"): {"alpha": True},
    ("POST", "share"): {"methods": ["GET"]},
    ("POST", "purge"): {},
    ("POST", "subscriptions"): {"subscriber": "http://127.0.0.1:9/alpha-hook"},
    ("PATCH", "subscription_id"): {"ttl": 100},
}


def probes(found):
    """(method, path, body) for every route the app declares, aimed at beta's
    resources."""
    import app as app_module
    for template, methods in app_module.app.routes.items():
        if template == "/":
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: found[m.group(1)], template)
        last = template.rstrip("/").rsplit("/", 1)[-1].strip("{}")
        for method in methods:
            yield method, path, BODIES.get((method, last), {})


def method_fallback(method, answer):
    """A 405 for a method the path lacks, or OPTIONS: they tell only which
    methods a path has, as Zaqar tells any authenticated caller."""
    if method == "OPTIONS":
        return answer.status_code == 200 and answer.content == b""
    return answer.status_code == 405 and (
        answer.content == b"" if method == "HEAD"
        else answer.json() == {"title": "405 Method Not Allowed"})


def test_a_token_of_alpha_reaches_nothing_of_betas_over_rest(runner, tokens, project_of,
                                                             beta_resources):
    before = beta_state(runner, tokens, beta_resources)
    project_of_beta = project_of(BETA)
    leaks = []
    for method, path, body in probes(beta_resources):
        for extra in ({}, {"X-Project-ID": project_of_beta}):
            answer = ask(runner, method, path, tokens(ALPHA), body, **extra)
            if extra and answer.status_code != 403 and not method_fallback(method, answer):
                leaks.append((method, path, "named beta", answer.status_code))
            if SECRET in answer.text or "beta-hook" in answer.text:
                leaks.append((method, path, extra, answer.text[:200]))
    assert leaks == []
    assert beta_state(runner, tokens, beta_resources) == before


def test_a_token_of_alpha_reaches_nothing_of_betas_over_the_websocket(
        runner, tokens, project_of, beta_resources):
    from chalicelib.websocket.dispatch import ACTIONS
    before = beta_state(runner, tokens, beta_resources)
    own = {"X-Project-ID": project_of(ALPHA)}
    body = {**beta_resources, "message_ids": [beta_resources["message_id"]],
            "messages": [{"body": "alpha was here"}], "subscriber": "http://127.0.0.1:9/a",
            "pop": 1, "ttl": 100}
    connection = websocket.create_connection(runner.ws_url, timeout=30)
    try:
        def frame(action, headers):
            connection.send(json.dumps({"action": action, "body": {
                key: body[key] for key in body if key != "claimed_id"},
                "headers": {"Client-ID": CLIENT_ID, **headers}}))
            return json.loads(connection.recv())

        # Before authenticating, only authenticate is answered.
        refused = [action for action in ACTIONS if action != "authenticate"
                   and frame(action, own)["body"] != {"error": "Not authentified."}]
        assert refused == []
        garbage = frame("authenticate", {**own, "X-Auth-Token": "garbage"})
        assert garbage["headers"]["status"] == 401
        authenticated = frame("authenticate", {**own, "X-Auth-Token": tokens(ALPHA)})
        assert authenticated["body"] == {"message": "Authentified."}
        leaks = []
        for action in ACTIONS:
            if action == "authenticate":
                continue
            named = frame(action, {"X-Project-ID": project_of(BETA)})
            if named["headers"]["status"] != 403:
                leaks.append((action, "named beta", named))
            answer = frame(action, own)
            if SECRET in json.dumps(answer) or "beta-hook" in json.dumps(answer):
                leaks.append((action, answer))
        assert leaks == []
    finally:
        connection.close()
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

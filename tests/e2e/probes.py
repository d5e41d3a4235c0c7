"""The cross-project probes (first written for Keystone, run by every auth
mode's end-to-end tests): beta's resources, and what alpha's credential
reaches of them on every route the app declares and every websocket
action. The probes walk the app's own route table and the websocket's
action table, so a route or action added later is probed without anyone
remembering to."""
import json
import re

import requests
import websocket

from conftest import CLIENT_ID
from local import keystone as local_keystone

ALPHA, BETA = local_keystone.USERS["alpha-member"], local_keystone.USERS["beta-member"]
SECRET = "beta's secret"


def ask(runner, method, path, token=None, body=None, **extra):
    headers = {"Client-ID": CLIENT_ID, "Content-Type": "application/json", **extra}
    if token is not None:
        headers["X-Auth-Token"] = token
    return requests.request(method, f"{runner.url}{path}", headers=headers, timeout=30,
                            data=None if body is None else json.dumps(body))


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
    # Beta's key still works, in beta's project.
    parts.append(ask(runner, "GET", queue, found["key"]).json())
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
    from chalicelib.auth.gateway import OPEN_ROUTES
    open_paths = {path for _, path in OPEN_ROUTES}  # served to anyone, by design
    for template, methods in app_module.app.routes.items():
        if template in open_paths:
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


def rest_leaks(runner, credential, beta_project, found):
    """What `credential` (alpha's) reaches of beta's over REST, on every
    route, with and without naming beta's project."""
    leaks = []
    for method, path, body in probes(found):
        for extra in ({}, {"X-Project-ID": beta_project}):
            answer = ask(runner, method, path, credential, body, **extra)
            if extra and answer.status_code != 403 and not method_fallback(method, answer):
                leaks.append((method, path, "named beta", answer.status_code))
            if SECRET in answer.text or "beta-hook" in answer.text:
                leaks.append((method, path, extra, answer.text[:200]))
    return leaks


def websocket_leaks(runner, credential, own_project, beta_project, found):
    """What `credential` (alpha's, of `own_project`) reaches of beta's over
    the websocket, once authenticated with it, with every action."""
    from chalicelib.websocket.dispatch import ACTIONS
    own = {"X-Project-ID": own_project}
    body = {**found, "message_ids": [found["message_id"]],
            "messages": [{"body": "alpha was here"}], "subscriber": "http://127.0.0.1:9/a",
            "pop": 1, "ttl": 100}
    connection = websocket.create_connection(runner.ws_url, timeout=30)
    try:
        def frame(action, headers):
            connection.send(json.dumps({"action": action, "body": {
                key: body[key] for key in body if key not in ("claimed_id", "key")},
                "headers": {"Client-ID": CLIENT_ID, **headers}}))
            return json.loads(connection.recv())

        # Before authenticating, only authenticate is answered.
        refused = [action for action in ACTIONS if action != "authenticate"
                   and frame(action, own)["body"] != {"error": "Not authentified."}]
        assert refused == []
        garbage = frame("authenticate", {**own, "X-Auth-Token": "garbage"})
        assert garbage["headers"]["status"] == 401
        authenticated = frame("authenticate", {**own, "X-Auth-Token": credential})
        assert authenticated["body"] == {"message": "Authentified."}
        leaks = []
        for action in ACTIONS:
            if action == "authenticate":
                continue
            named = frame(action, {"X-Project-ID": beta_project})
            if named["headers"]["status"] != 403:
                leaks.append((action, "named beta", named))
            answer = frame(action, own)
            if SECRET in json.dumps(answer) or "beta-hook" in json.dumps(answer):
                leaks.append((action, answer))
        return leaks
    finally:
        connection.close()

"""Trust subscriptions (`trust+http(s)://`, auth-notes §4.3) in process,
through the Chalice test client, against a real Keystone (the session's
`keystone`, local/keystone.py) with the real trustee `zaqar`: the trust
made with the caller's token, read back from Keystone; a given trust_id
accepted only when Keystone shows it is the caller's, for the trustee, in
its project; Keystone's real refusals and real outages, and the answers
the service makes of them; deliveries with the trust's token, cached; the
trustee's password read from SSM once (moto: the stand-in for AWS).

Keystone's calls are counted by wrapping chalicelib.keystone_api._call,
never replacing it. tests/e2e/test_trust_subscriptions.py runs the same
flows through the runner over HTTP.
"""
import dataclasses
import datetime
import json
import socket
import threading

import boto3
import moto
import pytest

from chalicelib import config, keystone_api, parameters, rest
from chalicelib.actions.subscriptions import NOT_CALLERS
from chalicelib.auth import keystone as keystone_auth
from chalicelib.notify import delivery, trusts
from chalicelib.storage.base import Subscription
from conftest import headers
from local import keystone as local_keystone
from local.dynamodb_local import free_port

QUEUE = "/v2/queues/news"
HOOK = "http://127.0.0.1:9/hook"  # loopback: the dev stage allows it
SERVICE = local_keystone.SERVICE_USER
TRUSTEE = {"keystone_trustee_user": SERVICE.name, "keystone_trustee_password": SERVICE.password}
USERS = local_keystone.USERS
NO_TRUSTEE = ("The subscriber type trust+http needs Keystone trusts, which this service "
              "does not have: no trustee (the service's Keystone user) is configured; use "
              "http instead.")
UNAVAILABLE = {"title": "Service temporarily unavailable",
               "description": "The Keystone service is temporarily unavailable. Please try "
                              "again in a few seconds."}
NOT_AUTHENTICATED = "The request you have made requires authentication."


# -- Keystone, as the tests use it -------------------------------------------

@dataclasses.dataclass(frozen=True)
class Token:
    token: str
    user_id: str
    project_id: str
    roles: frozenset


def issue(keystone, user_name, project=None):
    user = USERS[user_name]
    token, document = local_keystone.issue_token(keystone.url, user.name, user.password,
                                                 project or user.project)
    body = document["token"]
    return Token(token, body["user"]["id"], body["project"]["id"],
                 frozenset(role["name"] for role in body["roles"]))


@pytest.fixture(scope="module")
def who(keystone):
    """Project-scoped tokens, issued once per module: alpha (alpha-member),
    reader (alpha-reader), beta (beta-member), admin (on admin) and
    admin_alpha (admin on alpha), service (the trustee)."""
    return {"alpha": issue(keystone, "alpha-member"),
            "reader": issue(keystone, "alpha-reader"),
            "beta": issue(keystone, "beta-member"),
            "admin": issue(keystone, "admin"),
            "admin_alpha": issue(keystone, "admin", "alpha"),
            "service": issue(keystone, SERVICE.name)}


def make_trust(keystone, trustor, trustee, roles=None, hours=1):
    """A trust made in Keystone directly, with the trustor's own token."""
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=hours)
    status, _, body = local_keystone.call(
        "POST", f"{keystone.url}/OS-TRUST/trusts", trustor.token, {"trust": {
            "trustor_user_id": trustor.user_id, "trustee_user_id": trustee.user_id,
            "project_id": trustor.project_id, "impersonation": True,
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "roles": [{"name": role} for role in sorted(roles or trustor.roles)]}})
    assert status == 201, body
    return body["trust"]["id"]


def read_trust(keystone, who, trust_id):
    """The trust as Keystone has it, read with the trustee's token."""
    status, _, body = local_keystone.call(
        "GET", f"{keystone.url}/OS-TRUST/trusts/{trust_id}", who["service"].token)
    assert status == 200, body
    return body["trust"]


def trust_token(keystone, trust_id):
    """A token scoped to the trust, as the trustee gets one for a delivery."""
    status, answer, body = local_keystone.call("POST", f"{keystone.url}/auth/tokens", body={
        "auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": SERVICE.name, "domain": {"name": "Default"}, "password": SERVICE.password}}},
            "scope": {"OS-TRUST:trust": {"id": trust_id}}}})
    assert status == 201, body
    return answer["X-Subject-Token"]


@pytest.fixture
def calls(monkeypatch):
    """Keystone's calls, as they went: (method, path and query, the token
    asked with, the answer's status or "unreachable"), path after /v3."""
    made = []
    real = keystone_api._call

    def counted(method, url, timeout, headers, body=None, **options):
        entry = [method, url.split("/v3", 1)[-1], headers.get("X-Auth-Token"), 200, body]
        made.append(entry)
        try:
            return real(method, url, timeout, headers, body, **options)
        except keystone_api.Refused as refused:
            entry[3] = refused.status
            raise
        except keystone_api.Unavailable:
            entry[3] = "unreachable"
            raise
    monkeypatch.setattr(keystone_api, "_call", counted)
    return made


def trust_calls(calls, method="POST"):
    return [call for call in calls if call[1].startswith("/OS-TRUST/") and call[0] == method]


class Relay:
    """A TCP relay on 127.0.0.1 to Keystone, which can be shut: Keystone
    out of reach halfway through a request (after the caller's token was
    validated), on a port then closed."""

    def __init__(self, port):
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v3"
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        # shutdown, not only close: a close leaves the accept() under way
        # in the other thread listening.
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for each in self.sockets:
            each.close()


@pytest.fixture
def relay(keystone):
    opened = Relay(keystone.port)
    yield opened
    opened.close()


# -- the service, in process --------------------------------------------------

@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch):
    for name in ("_trustees", "_tokens"):
        monkeypatch.setattr(trusts, name, {})
    monkeypatch.setattr(parameters, "_values", {})  # the trustee's password, from SSM
    monkeypatch.setattr(keystone_auth, "_believed", {})


@pytest.fixture
def stage(monkeypatch, keystone):
    """The dev stage in keystone mode in front of the real Keystone, with
    the trustee; a test changes settings with `stage.update(...)`."""
    overrides = {"auth_strategy": "keystone", "keystone_url": keystone.url, **TRUSTEE}
    stage_settings = config.get_settings
    monkeypatch.setattr(rest, "get_settings",
                        lambda: dataclasses.replace(stage_settings(), **overrides))
    return overrides


def as_(token, **extra):
    return headers(project=token.project_id, X_Auth_Token=token.token, **extra)


def subscribe(client, token, body):
    return client.http.post(f"{QUEUE}/subscriptions", headers=as_(token), body=json.dumps(body))


def patch(client, token, sid, body):
    return client.http.patch(f"{QUEUE}/subscriptions/{sid}", headers=as_(token),
                             body=json.dumps(body))


def options_of(client, token, sid):
    answer = client.http.get(f"{QUEUE}/subscriptions/{sid}", headers=as_(token))
    assert answer.status_code == 200, answer.body
    return answer.json_body["options"]


def listed(client, token):
    answer = client.http.get(f"{QUEUE}/subscriptions", headers=as_(token))
    assert answer.status_code == 200, answer.body
    return answer.json_body["subscriptions"]


def seconds(iso):
    moment = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int(moment.timestamp())


# -- subscribing ---------------------------------------------------------------

def test_without_a_trustee_they_are_refused(client, stage, who, calls):
    stage.update(keystone_trustee_user="", keystone_trustee_password="")
    answer = subscribe(client, who["alpha"], {"subscriber": f"trust+{HOOK}"})
    assert answer.status_code == 400
    assert answer.json_body == {"title": "Invalid API request", "description": NO_TRUSTEE}
    # Keystone validated the caller's token, and was asked nothing else.
    assert [call[:2] for call in calls] == [["GET", "/auth/tokens?nocatalog"]]


def test_subscribing_makes_a_trust_from_the_caller(client, stage, keystone, who, calls, clock):
    alpha = who["alpha"]
    answer = subscribe(client, alpha, {"subscriber": f"trust+{HOOK}", "ttl": 600,
                                       "options": {"k": "v"}})
    assert answer.status_code == 201, answer.body
    options = options_of(client, alpha, answer.json_body["subscription_id"])
    assert options == {"k": "v", "trust_id": options["trust_id"]}

    # The trust, as Keystone has it: alpha's roles on alpha, for the trustee,
    # impersonating, until the subscription expires (Keystone keeps seconds).
    trust = read_trust(keystone, who, options["trust_id"])
    assert (trust["trustor_user_id"], trust["trustee_user_id"], trust["project_id"]) == (
        alpha.user_id, who["service"].user_id, alpha.project_id)
    assert {role["name"] for role in trust["roles"]} == alpha.roles == {"member", "reader"}
    assert trust["impersonation"] is True
    assert trust["remaining_uses"] is None
    assert seconds(trust["expires_at"]) == (clock.now + 600_000) // 1000

    # The caller's token validated; the trustee's id from authenticating as
    # it (with its password, no scope); the trust made with the caller's token.
    assert [call[:3] for call in calls] == [
        ["GET", "/auth/tokens?nocatalog", alpha.token],
        ["POST", "/auth/tokens?nocatalog", None],
        ["POST", "/OS-TRUST/trusts", alpha.token]]
    assert calls[1][4]["auth"] == {"identity": {"methods": ["password"], "password": {
        "user": {"name": SERVICE.name, "domain": {"name": "Default"},
                 "password": SERVICE.password}}}}


@pytest.mark.parametrize("subscriber, description", [
    ("trust+http://10.0.0.8/", "The subscriber is refused: 10.0.0.8: a loopback, link-local "
                               "or private address, which webhooks may not reach."),
    ("trust+http://[::1/", "The subscriber trust+http://[::1/ is not a valid URL."),
])
def test_the_url_after_trust_is_checked_as_a_webhook(client, stage, who, calls, subscriber,
                                                     description):
    answer = subscribe(client, who["alpha"], {"subscriber": subscriber})
    assert (answer.status_code, answer.json_body["description"]) == (400, description)
    assert trust_calls(calls) == []


# -- a given options.trust_id ------------------------------------------------------

def test_a_given_trust_id_of_the_callers_own_is_kept(client, stage, keystone, who, calls):
    alpha = who["alpha"]
    trust_id = make_trust(keystone, alpha, who["service"], roles=["reader"])
    answer = subscribe(client, alpha, {"subscriber": f"trust+{HOOK}",
                                       "options": {"trust_id": trust_id, "k": "v"}})
    assert answer.status_code == 201, answer.body
    assert options_of(client, alpha, answer.json_body["subscription_id"]) == {
        "trust_id": trust_id, "k": "v"}
    # Read with the caller's own token; no trust made.
    assert [call[:4] for call in trust_calls(calls, "GET")] == [
        ["GET", f"/OS-TRUST/trusts/{trust_id}", alpha.token, 200]]
    assert trust_calls(calls) == []


@pytest.mark.parametrize("case", [
    "another member's",            # alpha's trust, given by alpha-reader: Keystone 403
    "an admin's look",             # alpha's trust, given by admin on alpha: Keystone shows it
    "for another trustee",         # alpha's trust for beta-member, given by alpha
    "on another project",          # admin's trust on admin, given by admin on alpha
    "unknown",                     # no such trust: Keystone 404
    "deleted",                     # alpha's, deleted: Keystone 404
    "not an id",                   # never asked about
])
def test_a_given_trust_id_not_the_callers_is_refused(client, stage, keystone, who, calls,
                                                     case):
    alpha, service = who["alpha"], who["service"]
    caller, status = alpha, None
    if case == "another member's":
        trust_id, caller, status = make_trust(keystone, alpha, service), who["reader"], 403
    elif case == "an admin's look":
        trust_id, caller, status = make_trust(keystone, alpha, service), who["admin_alpha"], 200
    elif case == "for another trustee":
        trust_id, status = make_trust(keystone, alpha, who["beta"]), 200
    elif case == "on another project":
        trust_id, caller, status = make_trust(keystone, who["admin"], service), \
            who["admin_alpha"], 200
    elif case == "unknown":
        trust_id, status = "0" * 32, 404
    elif case == "deleted":
        trust_id, status = make_trust(keystone, alpha, service), 404
        local_keystone.call("DELETE", f"{keystone.url}/OS-TRUST/trusts/{trust_id}", alpha.token)
    else:
        trust_id = "../../users"
    answer = subscribe(client, caller, {"subscriber": f"trust+{HOOK}",
                                        "options": {"trust_id": trust_id}})
    assert answer.status_code == 403, answer.body
    assert answer.json_body == {"title": "Not authorized", "description": NOT_CALLERS}
    asked = trust_calls(calls, "GET")
    assert [call[3] for call in asked] == ([] if status is None else [status])
    assert all(call[2] == caller.token for call in asked)
    assert trust_calls(calls) == []
    assert listed(client, caller) == []


def test_a_trust_id_must_be_a_string(client, stage, who):
    answer = subscribe(client, who["alpha"], {"subscriber": f"trust+{HOOK}",
                                              "options": {"trust_id": 7}})
    assert answer.status_code == 400
    assert answer.json_body["description"] == "options.trust_id must be a string."


def test_updates_check_a_given_trust_id_unless_it_is_the_stored_one(client, stage, keystone,
                                                                     who, calls):
    alpha, reader = who["alpha"], who["reader"]
    sid = subscribe(client, alpha, {"subscriber": f"trust+{HOOK}"}).json_body[
        "subscription_id"]
    stored = options_of(client, alpha, sid)["trust_id"]
    mine = make_trust(keystone, alpha, who["service"])
    del calls[:]

    # The stored trust_id again, even from another member: no new check.
    assert patch(client, reader, sid, {"options": {"trust_id": stored, "k": 1}}).status_code \
        == 204
    assert options_of(client, alpha, sid) == {"trust_id": stored, "k": 1}
    assert trust_calls(calls, "GET") == []
    # Another of the caller's own: checked, kept.
    assert patch(client, alpha, sid, {"options": {"trust_id": mine}}).status_code == 204
    assert options_of(client, alpha, sid) == {"trust_id": mine}
    assert [call[3] for call in trust_calls(calls, "GET")] == [200]
    # Someone else's: refused, with the same subscriber or a new one.
    for body in ({"options": {"trust_id": stored}},
                 {"subscriber": f"trust+{HOOK}", "options": {"trust_id": stored}},
                 {"subscriber": f"trust+{HOOK}/2", "options": {"trust_id": mine}}):
        answer = patch(client, reader, sid, body)
        assert (answer.status_code, answer.json_body["description"]) == (403, NOT_CALLERS), body
    assert options_of(client, alpha, sid) == {"trust_id": mine}
    assert trust_calls(calls) == []


def test_a_plain_webhooks_trust_id_is_never_used(client, stage, keystone, who, calls):
    """Options of an http subscriber are Zaqar's to keep as they are: a
    trust_id there is not checked, and is dropped when the subscriber
    becomes trust+, which gets a trust of its own."""
    alpha, reader = who["alpha"], who["reader"]
    theirs = make_trust(keystone, alpha, who["service"])
    sid = subscribe(client, reader, {"subscriber": HOOK, "options": {"trust_id": theirs}}
                    ).json_body["subscription_id"]
    assert patch(client, reader, sid, {"options": {"trust_id": theirs, "k": 1}}).status_code \
        == 204
    assert trust_calls(calls, "GET") == []
    assert patch(client, reader, sid, {"subscriber": f"trust+{HOOK}"}).status_code == 204
    made = options_of(client, reader, sid)
    assert made["k"] == 1 and made["trust_id"] != theirs
    assert read_trust(keystone, who, made["trust_id"])["trustor_user_id"] == reader.user_id


def test_updates_make_a_trust_for_a_new_subscriber_only(client, stage, keystone, who, calls):
    alpha = who["alpha"]
    sid = subscribe(client, alpha, {"subscriber": HOOK, "options": {"k": "v"}}).json_body[
        "subscription_id"]
    assert patch(client, alpha, sid, {"subscriber": f"trust+{HOOK}"}).status_code == 204
    first = options_of(client, alpha, sid)["trust_id"]
    assert options_of(client, alpha, sid) == {"k": "v", "trust_id": first}
    # Options replaced for the same subscriber keep its trust.
    assert patch(client, alpha, sid, {"options": {"k": "w"}}).status_code == 204
    assert options_of(client, alpha, sid) == {"k": "w", "trust_id": first}
    assert patch(client, alpha, sid, {"ttl": 900, "subscriber": f"trust+{HOOK}"}
                 ).status_code == 204
    assert len(trust_calls(calls)) == 1
    # Another URL gets a trust of its own, never the old one.
    assert patch(client, alpha, sid, {"subscriber": f"trust+{HOOK}/2"}).status_code == 204
    second = options_of(client, alpha, sid)["trust_id"]
    assert options_of(client, alpha, sid) == {"k": "w", "trust_id": second}
    assert second != first and len(trust_calls(calls)) == 2
    for trust_id in (first, second):
        trust = read_trust(keystone, who, trust_id)
        assert (trust["trustor_user_id"], trust["project_id"]) == (alpha.user_id,
                                                                   alpha.project_id)
    assert patch(client, alpha, sid, {"subscriber": HOOK, "options": {}}).status_code == 204
    assert options_of(client, alpha, sid) == {}


# -- Keystone refusing, or out of reach ------------------------------------------

def test_a_trust_scoped_token_may_not_make_a_trust(client, stage, keystone, who):
    """A trust+ subscriber calling back with its delivery's token, and
    subscribing: Keystone lets no trust-scoped token delegate (403)."""
    alpha = who["alpha"]
    delivered = trust_token(keystone, make_trust(keystone, alpha, who["service"]))
    caller = dataclasses.replace(alpha, token=delivered)
    answer = subscribe(client, caller, {"subscriber": f"trust+{HOOK}"})
    assert answer.status_code == 403, answer.body
    assert answer.json_body == {
        "title": "Not authorized",
        "description": "Keystone refused to create a trust for the subscription: You are not "
                       "authorized to perform the requested action."}
    assert listed(client, alpha) == []


def test_a_clock_behind_keystones_makes_a_trust_expire_in_the_past(client, stage, who, clock):
    clock.advance(-3600)  # the service's clock an hour behind; the subscription 10 minutes
    answer = subscribe(client, who["alpha"], {"subscriber": f"trust+{HOOK}", "ttl": 600})
    assert answer.status_code == 400, answer.body
    assert answer.json_body == {
        "title": "Invalid API request",
        "description": "Keystone refused to create a trust for the subscription: The "
                       "'expires_at' must not be before now. The server could not comply with "
                       "the request since it is either malformed or otherwise incorrect. The "
                       "client is assumed to be in error."}
    assert listed(client, who["alpha"]) == []


@pytest.mark.parametrize("given", [False, True], ids=["made", "given"])
def test_a_token_revoked_while_believed(client, stage, keystone, who, calls, given):
    """The caller's token, believed for keystone_cache_seconds, revoked in
    the meantime: Keystone answers 401 to making (or showing) the trust."""
    alpha = who["alpha"]
    fresh = issue(keystone, "alpha-member")
    body = {"subscriber": f"trust+{HOOK}"}
    if given:
        body["options"] = {"trust_id": make_trust(keystone, alpha, who["service"])}
    assert client.http.get("/v2/queues", headers=as_(fresh)).status_code == 200
    local_keystone.revoke(keystone.url, fresh.token)
    answer = subscribe(client, fresh, body)
    assert answer.status_code == 400, answer.body
    refused = ("Keystone refused to show the trust options.trust_id names: " if given else
               "Keystone refused to create a trust for the subscription: ")
    assert answer.json_body == {"title": "Invalid API request",
                                "description": refused + NOT_AUTHENTICATED}
    assert [call[3] for call in calls if call[1].startswith("/OS-TRUST/")] == [401]
    assert listed(client, alpha) == []


def test_keystone_out_of_reach_before_the_caller_is_known(client, stage, who, calls):
    stage["keystone_url"] = f"http://127.0.0.1:{free_port()}/v3"
    answer = subscribe(client, who["alpha"], {"subscriber": f"trust+{HOOK}"})
    assert (answer.status_code, answer.json_body) == (503, UNAVAILABLE)
    assert [call[3] for call in calls] == ["unreachable"]


@pytest.mark.parametrize("given", [False, True], ids=["made", "given"])
def test_keystone_out_of_reach_once_the_caller_is_known(client, stage, keystone, who, calls,
                                                        relay, given):
    alpha = who["alpha"]
    stage["keystone_url"] = relay.url
    body = {"subscriber": f"trust+{HOOK}"}
    if given:
        body["options"] = {"trust_id": make_trust(keystone, alpha, who["service"])}
    assert client.http.get("/v2/queues", headers=as_(alpha)).status_code == 200
    relay.close()
    answer = subscribe(client, alpha, body)
    assert (answer.status_code, answer.json_body) == (503, UNAVAILABLE)
    assert [call[3] for call in calls] == [200, "unreachable"]
    stage["keystone_url"] = keystone.url
    assert listed(client, alpha) == []


def test_the_trustees_password_refused_is_the_services_fault(client, stage, who, calls):
    stage["keystone_trustee_password"] = "not-zaqar-secret"
    answer = subscribe(client, who["alpha"], {"subscriber": f"trust+{HOOK}"})
    assert (answer.status_code, answer.json_body) == (503, UNAVAILABLE)
    assert [call[:2] + call[3:4] for call in calls] == [
        ["GET", "/auth/tokens?nocatalog", 200], ["POST", "/auth/tokens?nocatalog", 401]]
    stage["keystone_trustee_password"] = SERVICE.password
    assert listed(client, who["alpha"]) == []


def test_a_trust_token_is_validated_with_the_trustees(client, stage, keystone, who, calls):
    """As a subscriber calling back with its delivery's token: Keystone
    answers 403 to its validating itself; the trustee may validate it."""
    alpha, service = who["alpha"], who["service"]
    delivered = trust_token(keystone, make_trust(keystone, alpha, service))
    asking = headers(project=alpha.project_id, X_Auth_Token=delivered)
    assert client.http.get("/v2/queues", headers=asking).status_code == 200
    trustees = calls[1][4]["auth"]
    assert "scope" not in trustees and trustees["identity"]["password"]["user"]["name"] == \
        SERVICE.name
    validations = [call for call in calls if call[0] == "GET"]
    assert [(call[2] == delivered, call[3]) for call in validations] == [(True, 403),
                                                                          (False, 200)]
    assert [call[0] for call in calls] == ["GET", "POST", "GET"]

    stage.update(keystone_trustee_user="", keystone_trustee_password="")
    other = trust_token(keystone, make_trust(keystone, alpha, service))
    answer = client.http.get("/v2/queues", headers=headers(project=alpha.project_id,
                                                            X_Auth_Token=other))
    assert answer.status_code == 503
    assert answer.json_body["description"].startswith(
        "This token can be validated only with the service's own Keystone user (the "
        "trustee), which is not configured.")


# -- delivery ---------------------------------------------------------------------

def trust_subscription(url, **options):
    return Subscription(id="s-1", queue="alpha/news", subscriber=f"trust+{url}",
                        ttl=600, expires=2 ** 50, options=options, confirmed=True)


@pytest.fixture
def trusting(keystone):
    """The dev stage's settings in keystone mode, with the trustee."""
    return dataclasses.replace(config.get_settings(), auth_strategy="keystone",
                               keystone_url=keystone.url, **TRUSTEE)


def scoped_token_requests(calls):
    return [call[4]["auth"]["scope"]["OS-TRUST:trust"]["id"] for call in calls
            if call[0] == "POST" and "scope" in (call[4] or {}).get("auth", {})]


def test_a_delivery_carries_the_trusts_token(receiver, trusting, keystone, who, calls):
    alpha = who["alpha"]
    trust_id = make_trust(keystone, alpha, who["service"])
    subscription = trust_subscription(f"{receiver.url}/hook?x=1", trust_id=trust_id,
                                      post_headers={"x-auth-token": "not this one"})
    for _ in range(2):
        outcome = delivery.send(subscription, {"body": "hi"}, trusting)
        assert outcome.delivered, outcome
    first, second = receiver.requests()
    assert first["path"] == "/hook?x=1"
    [token] = first["headers"].get_all("X-Auth-Token")
    assert first["headers"]["Content-Type"] == "application/json"
    assert first["json"] == {"body": "hi"}
    # One token, reused while it is good for long enough.
    assert second["headers"]["X-Auth-Token"] == token
    assert scoped_token_requests(calls) == [trust_id] and len(calls) == 1
    # Keystone's: scoped to the trust, acting as alpha in alpha's project.
    status, validated = local_keystone.validate_token(keystone.url, who["service"].token, token)
    assert status == 200, validated
    assert validated["token"]["OS-TRUST:trust"]["id"] == trust_id
    assert (validated["token"]["user"]["id"], validated["token"]["project"]["id"]) == (
        alpha.user_id, alpha.project_id)


def test_a_token_is_asked_for_again_once_its_cache_time_is_up(receiver, trusting, keystone,
                                                              who, calls, clock):
    trust_id = make_trust(keystone, who["alpha"], who["service"])
    subscription = trust_subscription(receiver.url, trust_id=trust_id)
    assert delivery.send(subscription, {}, trusting).delivered
    clock.advance(trusting.keystone_cache_seconds - 1)
    assert delivery.send(subscription, {}, trusting).delivered
    clock.advance(1)
    assert delivery.send(subscription, {}, trusting).delivered
    assert scoped_token_requests(calls) == [trust_id, trust_id]


def test_a_deleted_trust_gets_no_token_a_failed_attempt_to_retry(receiver, trusting, keystone,
                                                                  who):
    alpha = who["alpha"]
    trust_id = make_trust(keystone, alpha, who["service"])
    local_keystone.call("DELETE", f"{keystone.url}/OS-TRUST/trusts/{trust_id}", alpha.token)
    outcome = delivery.send(trust_subscription(receiver.url, trust_id=trust_id), {}, trusting)
    assert (outcome.delivered, outcome.retryable) == (False, True)
    # Keystone answers 401 to a token for a trust it no longer has.
    assert outcome.reason == (f"no token for trust {trust_id}: Keystone answered 401: "
                              f"{NOT_AUTHENTICATED}")
    assert receiver.requests() == []


def test_keystone_out_of_reach_is_a_failed_attempt_to_retry(receiver, trusting, keystone, who):
    trust_id = make_trust(keystone, who["alpha"], who["service"])
    away = dataclasses.replace(trusting, keystone_url=f"http://127.0.0.1:{free_port()}/v3")
    outcome = delivery.send(trust_subscription(receiver.url, trust_id=trust_id), {}, away)
    assert (outcome.delivered, outcome.retryable) == (False, True)
    assert outcome.reason.startswith(f"no token for trust {trust_id}: ")
    assert "refused" in outcome.reason.lower()
    assert receiver.requests() == []


def test_the_trustees_password_from_ssm_is_read_once(trusting, keystone, who, calls):
    settings = dataclasses.replace(trusting, keystone_trustee_password="",
                                   keystone_trustee_password_parameter="/zaqar/test/trustee")
    first, second = (make_trust(keystone, who["alpha"], who["service"]) for _ in range(2))
    with moto.mock_aws():
        ssm = boto3.client("ssm", region_name=settings.aws_region)
        ssm.put_parameter(Name="/zaqar/test/trustee", Value=SERVICE.password,
                          Type="SecureString")
        trusts.token_for(settings, first)
        ssm.delete_parameter(Name="/zaqar/test/trustee")
        trusts.token_for(settings, second)  # the parameter gone: the password was kept
    assert scoped_token_requests(calls) == [first, second]
    assert [call[4]["auth"]["identity"]["password"]["user"]["password"] for call in calls] == [
        SERVICE.password] * 2

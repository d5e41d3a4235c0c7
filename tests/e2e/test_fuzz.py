"""A bounded fuzz of the REST and websocket APIs against the local runner,
over real HTTP and websockets (hypothesis draws the requests).

Every REST route gets hostile path segments ('.', '..', ids over 1024 bytes,
unicode, raw '/', '?', '%'), query parameters, headers (Client-ID, project
ids, X-Tenant-Id, X-Roles, Accept, Content-Type, URL-Signature sets, real and
tampered) and bodies (random JSON, 975-level nesting, 1e400, -0, big ints,
NaN literals, invalid JSON, none); every websocket action (dispatch.ACTIONS)
gets hostile text frames and msgpack ones (bin, ext, non-string keys, inf).
Part of the requests are valid but for one hostile value, on a queue that
exists and holds messages, a claim and a subscription, so the deep paths
run. A few fixed requests (REST_SEEDS, ws_seeds) go first, whatever the
budget: shapes that broke the service before. Every answer must hold:

* no 5xx but 503 (501 only for a method HTTP servers do not know), and a 503
  must be transient: the same request asked again after a pause must not be
  503 again (a 503 that the input decides is a 4xx the service failed to name);
* REST: an error has a JSON object body with a string "title"; a success
  body is empty or strict JSON (NaN, Infinity fail);
* websocket: one answer frame per request, in the request's encoding, that
  parses, with headers.status an int; its body is something JSON can carry
  (no NaN, Infinity, bytes), and so is the echo of a text request; an error
  body is an object with "error" or "exception" (but the two §10.3 names);
* what was accepted reads back as strict JSON (a created queue, posted
  messages, a subscription);
* a queue named "." or ".." (which no URL can carry as a path segment) is
  refused.

A sentinel queue in a project of its own is made first; after the fuzz the
service must answer ping 204 and the sentinel must hold its messages, intact.
Another test checks that a connection stays usable after bad frames.

Failures are gathered, not raised at once (no shrinking: each request costs a
round trip), and each fuzz test fails at the end listing each distinct
failure, where it showed (route or action) and the smallest request that
showed it there, with the answer. In that listing a run of a repeated unit is
written ⟨unit⟩×count, e.g. ⟨[⟩×975 for 975 opening brackets.

The draws are derandomized (the same examples every run); hypothesis's near
copies of an example are not sent twice. Each fuzz has a wall-time budget
(REST_BUDGET_S, WS_BUDGET_S): past it the remaining examples are skipped,
so a slow machine gets a shallower fuzz, never a narrower one: every route
and action has had MIN_HITS plain requests first (the breadth seeds).
FUZZ_LOG=<file>
appends every request and its status to that file, to tune the draws.
"""
import http.client
import json
import math
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import msgpack
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from conftest import CLIENT_ID, headers

REST_EXAMPLES = 1500
WS_EXAMPLES = 1800
REST_BUDGET_S = 35.0
WS_BUDGET_S = 25.0
REQUEST_TIMEOUT_S = 30.0
REFILL_EVERY = 25  # examples between top-ups of the real queue
MIN_HITS = 2  # requests each route or action gets whatever the time budget

FUZZ_SETTINGS = dict(deadline=None, derandomize=True, database=None,
                     phases=[Phase.explicit, Phase.generate], print_blob=False,
                     suppress_health_check=list(HealthCheck))

QUEUE = "fuzzq"
EMPTY_QUEUE = "fuzzq-empty"
WEBHOOK = "http://127.0.0.1:9/fuzz-hook"  # discard port: nothing listens
DOT_NAMES = {".", ".."}


# -- JSON text with hostile fragments ----------------------------------------

@dataclass(frozen=True)
class Raw:
    """A fragment put into a JSON text as is: numbers json.dumps cannot
    write (1e400, -0, NaN literals), deep nesting."""
    text: str

    def python(self):
        """What a msgpack frame carries instead."""
        text = self.text
        if text.startswith(("[", "{")):
            depth = min(len(text) - len(text.lstrip("[{")), 400)  # msgpack's own limit ~512
            value = 1
            for _ in range(depth):
                value = [value]
            return value
        try:
            return float(text) if any(c in text for c in ".eEaIn") else int(text)
        except (ValueError, OverflowError):
            return float("inf")


def dump(value):
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, (bytes, msgpack.ExtType, msgpack.Timestamp)):
        return json.dumps(repr(value))  # what only msgpack can carry, shown
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(key))}:{dump(item)}"
                              for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dump(item) for item in value) + "]"
    return json.dumps(value)


def to_msgpack_value(value):
    if isinstance(value, Raw):
        value = value.python()
    if isinstance(value, dict):
        return {key: to_msgpack_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_msgpack_value(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and not (
            -2 ** 63 <= value < 2 ** 64):
        return float(value)
    return value


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def strict_json(text):
    return json.loads(text, parse_constant=_no_constant)


def _deep(depth, kind):
    if kind == "list":
        return Raw("[" * depth + "]" * depth)
    return Raw('{"a":' * depth + "1" + "}" * depth)


RAW_NUMBERS = ["1e400", "-1e400", "1E309", "-0", "-0.0", "0e0", "1e-400", "NaN",
               "Infinity", "-Infinity", str(2 ** 63), str(-2 ** 63 - 1), str(2 ** 64),
               "9" * 30, "1" + "0" * 5000, "1.0e+2", "60.0"]
DEPTHS = [100, 500, 900, 960, 975, 990, 1000, 1500, 40000]
HOSTILE_TEXT = ["", " ", "\x00", "\t\n", "😀" * 8, "é" * 600, "\u202e\u0301", "\ufeff",
                "a" * 1025, "a" * 5000, "NaN", "null", "true", "-0", "1e400",
                "<script>", "${x}", "%s%n", "../..", "\\", '"', "\ud7ff"]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-2 ** 70, max_value=2 ** 70),
    st.sampled_from([0, -1, 1, 59, 60, 2 ** 31, 2 ** 63 - 1, 2 ** 63, -2 ** 63]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=24),
    st.sampled_from(HOSTILE_TEXT),
    st.sampled_from(RAW_NUMBERS).map(Raw),
)
deep_values = st.builds(_deep, st.sampled_from(DEPTHS), st.sampled_from(["list", "dict"]))
# The values that broke services before, drawn often on their own.
dangerous = st.one_of(
    st.sampled_from([Raw("1e400"), Raw("-1e400"), Raw("1E309"), Raw("-0"), Raw(str(2 ** 64)),
                     Raw(str(-2 ** 63 - 1)), [], {}, [[]], "a" * 1025]),
    st.builds(_deep, st.sampled_from([975, 990, 1000]), st.sampled_from(["list", "dict"])))
json_values = st.one_of(
    dangerous,
    st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=10),
    deep_values)
ints = st.one_of(
    st.sampled_from([0, 1, 59, 60, 61, 300, 3600, 43200, 43201, 1209600, 1209601, -1,
                     2 ** 31, 2 ** 63 - 1, 2 ** 63, 20, 21]),
    st.sampled_from([60.0, 60.5, True, False, "60", None, [60], {"v": 60}]),
    st.sampled_from(RAW_NUMBERS).map(Raw))
maybe_hostile = lambda plausible: st.one_of(plausible, plausible, json_values)  # noqa: E731

RAW_BODIES = [
    "", " ", "{", "[", "}", "{]", "null", "true", "1", '"text"', "NaN", "Infinity",
    "-Infinity", "1e400", "-0", '{"a": NaN}', '{"a": Infinity}', '{"a": 1e400}',
    '{"messages": [{"body": 1e400}]}', '{"messages": [{"body": -0, "ttl": -0}]}',
    '{"messages": [{"body": NaN}]}', '{"ttl": 1e400, "grace": 1e400}',
    '{"a": 1, "a": 2}', "\ufeff{}", "{}\x00", '{"\\ud800": 1}', '"\\ud800"',
    "[" * 975 + "]" * 975, '{"a":' * 975 + "1" + "}" * 975,
    "[" * 100000 + "]" * 100000, "1" + "0" * 5000, "{'single': 'quotes'}",
    '{"paths": [[]]}', '{"paths": [{}]}', '{"methods": [[]]}', '{"paths": null}',
]
raw_bodies = st.one_of(st.sampled_from(RAW_BODIES),
                       st.text(max_size=40),
                       st.binary(max_size=40).map(lambda b: b.decode("latin-1")))


# -- what a path segment, a query and headers may be --------------------------

HOSTILE_SEGMENTS = [
    ".", "..", "...", "", " ", "%", "%2e", "%2E%2E", "a/b", "a%2Fb", "..%2F..", "null",
    "None", "__proto__", "0", "-1", "1e400", "NaN", "😀", "ü", "\u202e", "\x00", "\t",
    "a" * 64, "a" * 65, "a" * 1024, "a" * 1025, "a" * 3000, "é" * 600, "$", "{q}", "*",
    "?", "#", ";", "q;x=1", "00000000-0000-0000-0000-000000000000", "ff" * 12,
    "0" * 20, "9" * 25, "a-b_c.d",
]
segments = st.one_of(
    st.sampled_from(HOSTILE_SEGMENTS),
    st.text(max_size=40),
    st.from_regex(r"[a-zA-Z0-9_.-]{1,70}", fullmatch=True),
    st.integers(min_value=1, max_value=3000).map(lambda n: "x" * n))

PARAM_VALUES = ["", "0", "1", "-1", "2", "20", "21", "100", "2147483648", "9" * 40, "1e3",
                "1.5", "true", "false", "True", "TRUE", "yes", "no", "on", "maybe", "null",
                "[]", "a" * 1025, "é" * 513, "x" * 3000, "😀", "%00", " 1", "0x10", "١"]
LIST_PARAMS = ["marker", "limit", "detailed", "name", "with_count", "echo",
               "include_claimed", "include_delayed", "ids", "pop", "claim_ids",
               "claim_id"]

CLIENT_IDS = [None, "", "not-a-uuid", CLIENT_ID.upper(), "{" + CLIENT_ID + "}",
              "urn:uuid:" + CLIENT_ID, CLIENT_ID.replace("-", ""), "a" * 5000,
              "é".encode(), " " + CLIENT_ID, "00000000-0000-0000-0000-000000000000"]
PROJECTS = [None, "", " ", "a" * 256, "a" * 257, "a" * 10000, "ü".encode(), "..",
            "\t", "p/q", "other-project"]
ACCEPTS = [None, "application/json", "text/html", "*/*", "garbage", "application/xml",
           "application/*;q=0", ""]
CONTENT_TYPES = [None, "application/json", "application/openstack-messaging-v2.0-json-patch",
                 "application/x-www-form-urlencoded", "text/plain", "garbage",
                 "application/json; charset=latin-1"]
ROLES = [None, "admin", "admin, ,x", "ADMIN", ",", "a" * 3000]


@dataclass
class World:
    """What exists in the runner for the fuzz to hit: a real queue with
    messages, a live claim and a subscription (topped up as the fuzz eats
    them), and a signature from /share."""
    project: str
    messages: list = field(default_factory=list)
    claim_id: str = "no-claim-yet"
    subscription_id: str = "no-subscription-yet"
    signature: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Ref:
    """A path segment or value resolved, when the request is made, to a real
    resource of the World."""
    kind: str
    index: int = 0

    def resolve(self, world):
        if self.kind == "q":
            return QUEUE
        if self.kind == "q-empty":
            return EMPTY_QUEUE
        if self.kind == "mid":
            return world.messages[self.index % len(world.messages)] if world.messages \
                else "0"
        if self.kind == "cid":
            return world.claim_id
        if self.kind == "sid":
            return world.subscription_id
        raise AssertionError(self.kind)


def resolve(value, world):
    if isinstance(value, Ref):
        return value.resolve(world)
    if isinstance(value, dict):
        return {key: resolve(item, world) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, world) for item in value]
    return value


queue_refs = st.one_of(st.just(Ref("q")), st.just(Ref("q")), st.just(Ref("q")),
                       st.just(Ref("q-empty")), st.sampled_from(sorted(DOT_NAMES)), segments)
message_refs = st.one_of(st.builds(Ref, st.just("mid"), st.integers(0, 50)), segments)
claim_refs = st.one_of(st.just(Ref("cid")), segments)
subscription_refs = st.one_of(st.just(Ref("sid")), segments)
SEGMENT_STRATEGIES = {"q": queue_refs, "mid": message_refs, "cid": claim_refs,
                      "sid": subscription_refs}
SUBSCRIBERS = [WEBHOOK, "https://127.0.0.1:9/x", "http://[::1]:9/x", "http://127.0.0.1:99999/",
               "http://", "ftp://127.0.0.1/x", "127.0.0.1", "", "javascript:alert(1)",
               "http://127.0.0.1:9/" + "a" * 3000, "http://user:pw@127.0.0.1:9/"]
subscribers = st.one_of(st.sampled_from(SUBSCRIBERS), st.sampled_from(
    [1, None, True, [], {}, ["http://127.0.0.1:9/"], Raw("1e400")]))


# -- REST --------------------------------------------------------------------

ROUTES = [
    ("GET", "/"), ("GET", "/v2"), ("GET", "/v2/"), ("GET", "/v2/ping"), ("HEAD", "/v2/ping"),
    ("GET", "/v2/health"), ("GET", "/v2/queues"),
    ("PUT", "/v2/queues/{q}"), ("GET", "/v2/queues/{q}"), ("PATCH", "/v2/queues/{q}"),
    ("DELETE", "/v2/queues/{q}"), ("GET", "/v2/queues/{q}/stats"),
    ("POST", "/v2/queues/{q}/purge"), ("POST", "/v2/queues/{q}/share"),
    ("POST", "/v2/queues/{q}/messages"), ("GET", "/v2/queues/{q}/messages"),
    ("DELETE", "/v2/queues/{q}/messages"),
    ("GET", "/v2/queues/{q}/messages/{mid}"), ("DELETE", "/v2/queues/{q}/messages/{mid}"),
    ("POST", "/v2/queues/{q}/claims"), ("GET", "/v2/queues/{q}/claims/{cid}"),
    ("PATCH", "/v2/queues/{q}/claims/{cid}"), ("DELETE", "/v2/queues/{q}/claims/{cid}"),
    ("GET", "/v2/queues/{q}/subscriptions"), ("POST", "/v2/queues/{q}/subscriptions"),
    ("GET", "/v2/queues/{q}/subscriptions/{sid}"),
    ("PATCH", "/v2/queues/{q}/subscriptions/{sid}"),
    ("DELETE", "/v2/queues/{q}/subscriptions/{sid}"),
    ("PUT", "/v2/queues/{q}/subscriptions/{sid}/confirm"),
]
WEIGHTED_ROUTES = ROUTES + [("POST", "/v2/queues/{q}/messages")] * 2 + [
    ("PUT", "/v2/queues/{q}"), ("POST", "/v2/queues/{q}/subscriptions"),
    ("POST", "/v2/queues/{q}/share"), ("PATCH", "/v2/queues/{q}")]
KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
OTHER_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND",
                 "TRACE"]

METADATA_KEYS = ["_max_messages_post_size", "_default_message_ttl", "_default_message_delay",
                 "_dead_letter_queue", "_dead_letter_queue_messages_ttl", "_max_claim_count",
                 "_retry_policy", "_flavor", "_enable_encrypt_messages", "description",
                 "_unknown", ""]


@st.composite
def some_of(draw, fields):
    """An object with a non-empty subset of `fields` (name -> strategy)."""
    names = draw(st.lists(st.sampled_from(sorted(fields)), min_size=1,
                          max_size=len(fields), unique=True))
    return {name: draw(fields[name]) for name in names}


queue_metadata = st.dictionaries(
    st.one_of(st.sampled_from(METADATA_KEYS), st.text(max_size=12)),
    st.one_of(ints, json_values, st.sampled_from([QUEUE, ".", "..", "a" * 65])),
    max_size=4)
patch_ops = st.lists(some_of({
    "op": st.one_of(st.sampled_from(["add", "remove", "replace", "move", "test", "ADD"]),
                    json_values),
    "path": st.one_of(st.sampled_from(
        ["/metadata/x", "/metadata/_default_message_ttl", "/metadata/_max_claim_count",
         "/metadata", "/", "", "/metadata/a/b", "/metadata/~2", "/metadata/~0~1",
         "/other/x", "/metadata/" + "k" * 3000]), json_values),
    "value": st.one_of(ints, json_values)}), max_size=4)
messages_doc = st.lists(some_of({
    "body": json_values, "ttl": ints, "delay": ints, "extra": json_values}), max_size=4)
claim_doc = some_of({"ttl": ints, "grace": ints, "limit": ints})
SHARE_EXPIRES = ["2100-01-01T00:00:00", "2000-01-01T00:00:00", "2100-01-01T00:00:00Z",
                 "9999-12-31T23:59:59", "garbage", "", "1", 1, None, Raw("1e400"),
                 "2100-13-45T99:99:99", "2100-01-01T00:00:00+99:00"]
share_doc = some_of({
    "paths": st.one_of(st.lists(st.one_of(st.sampled_from(
        ["messages", "subscriptions", "claims", "queues", ""]), json_values), max_size=3),
        json_values),
    "methods": st.one_of(st.lists(st.one_of(st.sampled_from(
        ["GET", "POST", "PUT", "DELETE", "PATCH", "get"]), json_values), max_size=3),
        json_values),
    "expires": st.sampled_from(SHARE_EXPIRES),
    "junk": json_values})
subscription_doc = some_of({
    "subscriber": subscribers, "ttl": ints,
    "options": st.one_of(st.dictionaries(st.sampled_from(
        ["_retry_policy", "subject", "from", "x"]), json_values, max_size=2), json_values)})

FIELD_BODIES = {
    ("PUT", "/v2/queues/{q}"): queue_metadata,
    ("PATCH", "/v2/queues/{q}"): patch_ops,
    ("POST", "/v2/queues/{q}/purge"): some_of({
        "resource_types": st.one_of(st.lists(st.one_of(st.sampled_from(
            ["messages", "subscriptions", "claims"]), json_values), max_size=3),
            json_values)}),
    ("POST", "/v2/queues/{q}/share"): share_doc,
    ("POST", "/v2/queues/{q}/messages"): st.one_of(
        st.fixed_dictionaries({"messages": messages_doc}),
        st.fixed_dictionaries({"messages": st.lists(st.fixed_dictionaries(
            {"body": json_values}), min_size=1, max_size=2)}),
        st.fixed_dictionaries({"messages": json_values}),
        st.just({"messages": [{"body": "x" * 300_000}]})),
    ("POST", "/v2/queues/{q}/claims"): claim_doc,
    ("PATCH", "/v2/queues/{q}/claims/{cid}"): claim_doc,
    ("POST", "/v2/queues/{q}/subscriptions"): subscription_doc,
    ("PATCH", "/v2/queues/{q}/subscriptions/{sid}"): subscription_doc,
    ("PUT", "/v2/queues/{q}/subscriptions/{sid}/confirm"): st.fixed_dictionaries(
        {}, optional={"confirmed": st.one_of(st.booleans(), json_values)}),
}


def _places(document):
    """(container, key) of every value inside a document."""
    found, stack = [], [document]
    while stack:
        item = stack.pop()
        members = item.items() if isinstance(item, dict) else (
            enumerate(item) if isinstance(item, list) else ())
        for key, member in members:
            found.append((item, key))
            stack.append(member)
    return found


@st.composite
def one_hostile(draw, plausible, hostile=None):
    """A valid document with (most often) one value in it made hostile: a
    request that gets past the first checks and reaches deeper code."""
    document = draw(plausible)
    places = _places(document)
    if places and draw(st.integers(0, 3)) > 0:
        container, key = draw(st.sampled_from(places))
        container[key] = draw(json_values if hostile is None else hostile)
    return document


seconds = st.integers(min_value=60, max_value=3600)
free_json = st.one_of(scalars, dangerous, st.lists(scalars, max_size=3),
                      st.dictionaries(st.text(max_size=6), scalars, max_size=3))
PLAUSIBLE_BODIES = {
    ("PUT", "/v2/queues/{q}"): st.fixed_dictionaries(
        {"_default_message_ttl": seconds, "note": free_json}),
    ("PATCH", "/v2/queues/{q}"): st.lists(st.fixed_dictionaries({
        "op": st.sampled_from(["add", "replace"]), "path": st.just("/metadata/note"),
        "value": free_json}), min_size=1, max_size=2),
    ("POST", "/v2/queues/{q}/purge"): st.fixed_dictionaries({"resource_types": st.lists(
        st.sampled_from(["messages", "subscriptions"]), min_size=1, max_size=2)}),
    ("POST", "/v2/queues/{q}/share"): st.fixed_dictionaries({
        "paths": st.lists(st.sampled_from(["messages", "subscriptions", "claims"]),
                          min_size=1, max_size=3),
        "methods": st.lists(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
                            min_size=1, max_size=3),
        "expires": st.just("2100-01-01T00:00:00")}),
    ("POST", "/v2/queues/{q}/messages"): st.fixed_dictionaries({"messages": st.lists(
        st.fixed_dictionaries({"body": free_json, "ttl": seconds}), min_size=1, max_size=3)}),
    ("POST", "/v2/queues/{q}/claims"): st.fixed_dictionaries({"ttl": seconds,
                                                              "grace": seconds}),
    ("PATCH", "/v2/queues/{q}/claims/{cid}"): st.fixed_dictionaries({"ttl": seconds,
                                                                     "grace": seconds}),
    ("POST", "/v2/queues/{q}/subscriptions"): st.fixed_dictionaries({
        "subscriber": st.builds(lambda n: f"{WEBHOOK}/{n}", st.integers(0, 10 ** 6)),
        "ttl": seconds, "options": st.fixed_dictionaries({"note": free_json})}),
    ("PATCH", "/v2/queues/{q}/subscriptions/{sid}"): st.fixed_dictionaries({
        "ttl": seconds, "options": st.fixed_dictionaries({"note": free_json})}),
    ("PUT", "/v2/queues/{q}/subscriptions/{sid}/confirm"): st.fixed_dictionaries(
        {"confirmed": st.booleans()}),
}


@st.composite
def bodies(draw, route):
    """The body text of a request, or None for no body."""
    field_body = FIELD_BODIES.get(route)
    kind = draw(st.sampled_from(
        ["plausible"] * (6 if route in PLAUSIBLE_BODIES else 0)
        + ["field"] * (4 if field_body is not None else 0) + ["none"] * 3
        + ["raw", "json"]))
    if kind == "plausible":
        return dump(draw(one_hostile(PLAUSIBLE_BODIES[route])))
    if kind == "field":
        return dump(draw(field_body))
    if kind == "none":
        return None
    if kind == "raw":
        return draw(raw_bodies)
    return dump(draw(json_values))


ROUTE_PARAMS = {
    ("GET", "/v2/queues"): ["marker", "limit", "detailed", "name", "with_count"],
    ("GET", "/v2/queues/{q}/messages"): ["marker", "limit", "echo", "include_claimed",
                                         "include_delayed", "ids"],
    ("DELETE", "/v2/queues/{q}/messages"): ["ids", "pop", "claim_ids"],
    ("DELETE", "/v2/queues/{q}/messages/{mid}"): ["claim_id"],
    ("POST", "/v2/queues/{q}/claims"): ["limit"],
    ("GET", "/v2/queues/{q}/subscriptions"): ["marker", "limit"],
}


@st.composite
def queries(draw, route):
    names = ROUTE_PARAMS.get(route, LIST_PARAMS)
    params = draw(st.lists(st.tuples(
        st.one_of(st.sampled_from(names), st.sampled_from(names), st.sampled_from(LIST_PARAMS),
                  st.text(max_size=8)),
        st.one_of(st.sampled_from(PARAM_VALUES), st.text(max_size=20),
                  st.builds(Ref, st.just("mid"), st.integers(0, 50)),
                  st.just(Ref("cid")), st.just(Ref("sid")),
                  st.lists(st.builds(Ref, st.just("mid"), st.integers(0, 50)),
                           min_size=1, max_size=3))),
        max_size=4))
    return params


@st.composite
def rest_headers(draw, route):
    """Header name -> value (str or bytes); None drops the header."""
    method, template = route
    normal = draw(st.integers(0, 9)) < 7
    found = {"Client-ID": CLIENT_ID, "X-Project-ID": "<world>"}
    if template.endswith("/{q}") and method == "PATCH" and draw(st.integers(0, 9)) < 7:
        found["Content-Type"] = "application/openstack-messaging-v2.0-json-patch"
    elif draw(st.booleans()):
        found["Content-Type"] = "application/json"
    if template == "/v2/health" and draw(st.booleans()):
        found["X-Roles"] = "admin"
    if normal:
        return found
    if draw(st.booleans()):
        found["Client-ID"] = draw(st.sampled_from(CLIENT_IDS))
    if draw(st.booleans()):
        found["X-Project-ID"] = draw(st.sampled_from(PROJECTS))
        if draw(st.booleans()):
            found[draw(st.sampled_from(["X-Tenant-Id", "X-Tenant"]))] = draw(
                st.sampled_from(PROJECTS + ["<world>"]))
    for name, choices in (("Accept", ACCEPTS), ("Content-Type", CONTENT_TYPES),
                          ("X-Roles", ROLES)):
        if draw(st.integers(0, 3)) == 0:
            found[name] = draw(st.sampled_from(choices))
    if draw(st.integers(0, 2)) == 0:
        found["URL-Signature"] = "<signature>"
        tamper = draw(st.sampled_from(
            [None, "URL-Signature", "URL-Paths", "URL-Methods", "URL-Expires", "drop"]))
        found["<tamper>"] = tamper
        if tamper:
            found["<tamper-value>"] = draw(st.sampled_from(
                ["", "x", "GET,POST,PUT,PATCH,DELETE", "/v2/queues", "2000-01-01T00:00:00",
                 "a" * 3000, "0" * 64, "/", ",,,"]))
    if draw(st.integers(0, 5)) == 0:
        found["X-Auth-Token"] = draw(st.sampled_from(["", "garbage", "a" * 3000]))
    return found


@dataclass
class RestRequest:
    method: str
    route: str
    path: str
    headers: dict
    body: object  # str, or None

    def size(self):
        return (len(self.path) + len(self.body or "")
                + sum(len(str(v)) for v in self.headers.values()))

    def describe(self):
        lines = [f"{self.method} {shorten(self.path, 300)}"]
        shown = {name: shorten(value if isinstance(value, str) else repr(value), 120)
                 for name, value in self.headers.items()}
        lines.append(f"  headers: {shown}")
        if self.body is not None:
            lines.append(f"  body ({len(self.body.encode('utf-8', 'surrogatepass'))} bytes): "
                         f"{shorten(self.body, 400)}")
        return "\n".join(lines)


def resolve_headers(drawn, world):
    found = {}
    for name, value in drawn.items():
        if name.startswith("<"):
            continue
        if value == "<world>":
            value = world.project
        if value is not None:
            found[name] = value
    if "URL-Signature" in drawn:
        signature = world.signature
        found.update({"URL-Signature": signature.get("signature", ""),
                      "URL-Paths": ",".join(signature.get("paths", [])),
                      "URL-Methods": ",".join(signature.get("methods", [])),
                      "URL-Expires": signature.get("expires", "")})
        tamper = drawn.get("<tamper>")
        if tamper == "drop":
            found.pop("URL-Paths")
        elif tamper:
            found[tamper] = drawn["<tamper-value>"]
    return found


def encode_segment(segment, raw):
    # Raw keeps '/', '?', '#', '%' and the rest unencoded: the request's shape
    # itself changes. '.' and '..' are never encoded by quote.
    return quote(segment, safe="/?#%;=&:@!$'()*+," if raw else "")


def encode_query(params, world):
    parts = []
    for name, value in params:
        value = resolve(value, world)
        values = value if isinstance(value, list) else [value]
        joined = ",".join(str(item) for item in values)
        parts.append(f"{quote(name, safe='')}={quote(joined, safe=',')}")
    return "&".join(parts)


@dataclass
class Answer:
    status: int
    headers: dict
    text: str
    error: str = ""  # the transport's failure, if any

    def describe(self):
        if self.error:
            return self.error
        return f"{self.status} {shorten(self.text, 400)}"


class Http:
    def __init__(self, url):
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1"
        self.host, self.port = parts.hostname, parts.port

    def send(self, method, path, headers=None, body=None):
        connection = http.client.HTTPConnection(self.host, self.port,
                                                timeout=REQUEST_TIMEOUT_S)
        try:
            data = None if body is None else body.encode("utf-8", "surrogatepass")
            connection.request(method, path, body=data, headers=headers or {})
            response = connection.getresponse()
            raw = response.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                return Answer(response.status, dict(response.getheaders()), repr(raw),
                              error=f"{response.status} body is not UTF-8: {raw[:200]!r}")
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                          text)
        except (OSError, http.client.HTTPException) as failure:
            return Answer(0, {}, "", error=f"no answer: {type(failure).__name__}: {failure}")
        finally:
            connection.close()

    def json(self, method, path, project, body=None, **extra):
        text = None if body is None else json.dumps(body)
        return self.send(method, path, headers(project=project, **extra), text)


# -- findings ----------------------------------------------------------------

REPEATS = re.compile(r"(.{1,8}?)\1{9,}", re.S)


def shorten(text, limit):
    text = REPEATS.sub(lambda m: f"⟨{m.group(1)}⟩×{len(m.group(0)) // len(m.group(1))}",
                       str(text))
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else f"{text[:limit]}…[{len(text)} chars]"


class Findings:
    """Distinct failures: what went wrong -> where (route or action) -> the
    smallest request that showed it there."""
    SHOWN_PER_FAILURE = 6  # wheres shown with their request; the rest are named

    def __init__(self):
        self.found = {}
        self.sent = 0
        self.slowest = []  # (seconds, request) of the slowest few

    def timed(self, seconds, request):
        self.slowest = sorted(self.slowest + [(seconds, request)],
                              key=lambda pair: -pair[0])[:3]

    def timing(self):
        return "; slowest: " + "; ".join(
            f"{seconds:.2f} s for {shorten(request.describe(), 160)}"
            for seconds, request in self.slowest)

    def add(self, where, what, request, answer):
        size = request.size() if hasattr(request, "size") else len(str(request))
        wheres = self.found.setdefault(what, {})
        seen = wheres.get(where)
        if seen is None or size < seen[0]:
            count = seen[3] if seen else 0
            wheres[where] = [size, request.describe(), answer.describe(), count]
        wheres[where][3] += 1

    def note(self, what):
        self.found.setdefault(what, {})

    def report(self, title):
        lines = [f"{title}: {len(self.found)} distinct failure(s) in {self.sent} requests"]
        for what, wheres in sorted(self.found.items()):
            ordered = sorted(wheres.items(), key=lambda item: item[1][0])
            lines.append(f"\n* {what}  (seen {sum(seen[3] for seen in wheres.values())}x"
                         + (f", on: {', '.join(where for where, _ in ordered)})"
                            if wheres else ")"))
            for where, (_, request, answer, count) in ordered[:self.SHOWN_PER_FAILURE]:
                lines += [f"  [{where}] {count}x",
                          "    request: " + request.replace("\n", "\n    "),
                          f"    answer:  {answer}"]
        return "\n".join(lines)


def check_rest_answer(request, answer, findings, http):
    where = f"{request.method} {request.route}"
    if answer.error:
        findings.add(where, f"REST: {answer.error.split(':')[0]}", request, answer)
        return None
    status = answer.status
    if status >= 500 and status != 503 and not (
            status == 501 and request.method not in KNOWN_METHODS):
        # 501 is HTTP's answer to a method the server does not know at all.
        findings.add(where, f"REST: status {status}", request, answer)
    if request.method == "HEAD" or not answer.text:
        if status >= 400 and request.method != "HEAD":
            findings.add(where, f"REST: {status} with an empty body", request, answer)
        return None
    try:
        document = strict_json(answer.text)
    except (ValueError, RecursionError) as failure:
        reason = getattr(failure, "msg", None) or str(failure)
        findings.add(where, f"REST: {'error' if status >= 400 else 'success'} body is not "
                     f"strict JSON ({shorten(reason, 60)})", request, answer)
        return None
    if status >= 400 and not (isinstance(document, dict)
                              and isinstance(document.get("title"), str)
                              and isinstance(document.get("description", ""), str)):
        findings.add(where, "REST: error body without a string title", request, answer)
    if status == 503:
        time.sleep(0.5)
        again = http.send(request.method, request.path, request.headers, request.body)
        if again.status == 503:
            findings.add(where, "REST: 503 again on a retry: the input decides it (should "
                         "be a 4xx)", request, again)
    return document


# -- the fixtures ------------------------------------------------------------

SENTINEL_BODIES = [{"n": 1, "text": "sentinel"}, "plain ünïcødé 😀", [1, 2.5, None, True],
                   {"nested": {"deep": ["x" * 100]}}, 0]


class Sentinel:
    """A queue in a project of its own, made before the fuzz."""

    def __init__(self, http):
        self.http = http
        self.project = f"fuzz-sentinel-{uuid.uuid4()}"
        assert http.json("PUT", "/v2/queues/sentinel", self.project,
                         {"_default_message_ttl": 3600, "note": "sentinel"}).status == 201
        posted = http.json("POST", "/v2/queues/sentinel/messages", self.project,
                           {"messages": [{"body": body, "ttl": 3600}
                                         for body in SENTINEL_BODIES]})
        assert posted.status == 201, posted.describe()
        self.ids = [path.rsplit("/", 1)[1] for path in strict_json(posted.text)["resources"]]

    def problems(self):
        """What differs from what was stored; [] if all is intact."""
        problems = []
        ping = self.http.send("GET", "/v2/ping", headers(project=self.project))
        if ping.status != 204:
            problems.append(f"GET /v2/ping answered {ping.describe()}")
        listed = self.http.send(
            "GET", "/v2/queues/sentinel/messages?echo=true&include_claimed=true&limit=20",
            headers(project=self.project))
        try:
            found = {m["id"]: m["body"] for m in strict_json(listed.text)["messages"]}
        except (ValueError, KeyError, TypeError):
            return problems + [f"listing the sentinel answered {listed.describe()}"]
        expected = dict(zip(self.ids, SENTINEL_BODIES))
        if found != expected:
            problems.append(f"the sentinel's messages changed: {found} != {expected}")
        for message_id, body in expected.items():
            one = self.http.send("GET", f"/v2/queues/sentinel/messages/{message_id}",
                                 headers(project=self.project))
            if one.status != 200 or _field(one.text, "body") != body:
                problems.append(f"sentinel message {message_id}: {one.describe()}")
        queue = self.http.send("GET", "/v2/queues/sentinel", headers(project=self.project))
        if queue.status != 200 or _field(queue.text, "note") != "sentinel":
            problems.append(f"the sentinel queue's metadata: {queue.describe()}")
        return problems


def _field(text, name):
    try:
        return strict_json(text).get(name)
    except (ValueError, AttributeError):
        return None


@pytest.fixture(scope="module")
def http_client(local_runner):
    return Http(local_runner.url)


@pytest.fixture(scope="module")
def sentinel(http_client):
    return Sentinel(http_client)


def refill(http, world):
    """Top the real queue up: it exists, holds messages, a live claim and a
    subscription, and a signature for its messages is at hand."""
    project = world.project
    http.json("PUT", f"/v2/queues/{QUEUE}", project, {"_max_claim_count": 100})
    http.json("PUT", f"/v2/queues/{EMPTY_QUEUE}", project)
    posted = http.json("POST", f"/v2/queues/{QUEUE}/messages", project,
                       {"messages": [{"body": {"n": n}, "ttl": 600} for n in range(6)]})
    if posted.status == 201:
        ids = [path.rsplit("/", 1)[1] for path in strict_json(posted.text)["resources"]]
        world.messages = (world.messages + ids)[-30:]
    claimed = http.json("POST", f"/v2/queues/{QUEUE}/claims?limit=2", project,
                        {"ttl": 300, "grace": 60})
    if claimed.status == 201:
        world.claim_id = claimed.headers["location"].rsplit("/", 1)[1]
    found = http.send("GET", f"/v2/queues/{QUEUE}/subscriptions/{world.subscription_id}",
                      headers(project=project))
    if found.status != 200:
        made = http.json("POST", f"/v2/queues/{QUEUE}/subscriptions", project,
                         {"subscriber": WEBHOOK, "ttl": 3600})
        if made.status == 201:
            world.subscription_id = strict_json(made.text)["subscription_id"]
    if not world.signature:
        shared = http.json("POST", f"/v2/queues/{QUEUE}/share", project,
                           {"paths": ["messages", "claims"], "methods": ["GET", "POST"]})
        if shared.status == 200:
            world.signature = strict_json(shared.text)


def read_back_rest(request, document, answer, http, findings):
    """What was accepted must read back as strict JSON."""
    path = request.path.split("?", 1)[0]
    reads = []
    if request.method == "PUT" and request.route == "/v2/queues/{q}":
        reads.append(path)
        name = path.rsplit("/", 1)[1]
        if name in DOT_NAMES:
            findings.add(f"{request.method} {request.route}",
                         "REST: queue name '.' or '..' accepted", request, answer)
    elif request.method == "POST" and request.route.endswith("/messages") and document:
        ids = [resource.rsplit("/", 1)[1] for resource in document.get("resources", [])]
        reads.append(f"{path}?ids={','.join(ids)}")
        reads.append(f"{path}?echo=true&include_claimed=true")
    elif request.route.endswith("/subscriptions") and request.method == "POST" and document:
        reads.append(f"{path}/{quote(str(document.get('subscription_id')), safe='')}")
    elif request.route.endswith("/subscriptions/{sid}") and request.method == "PATCH":
        reads.append(path)
    elif request.route == "/v2/queues/{q}" and request.method == "PATCH":
        reads.append(path)
    for read_path in reads:
        read = RestRequest("GET", f"{request.route} (read back after {request.method})",
                           read_path, {k: v for k, v in request.headers.items()
                                       if not k.lower().startswith("content")}, None)
        check_rest_answer(read, http.send("GET", read_path, read.headers), findings, http)


@dataclass
class Budget:
    seconds: float
    started: float = field(default_factory=time.monotonic)
    count: int = 0
    stopped: int = 0
    failures_in_a_row: int = 0
    per_target: dict = field(default_factory=dict)
    seen: set = field(default_factory=set)
    duplicates: int = 0

    def novel(self, *request):
        """False for a request already sent: hypothesis mutates each example
        into a few near copies, and a copy costs a round trip for nothing."""
        fingerprint = hash(repr(request))
        if fingerprint in self.seen:
            self.duplicates += 1
            return False
        self.seen.add(fingerprint)
        return True

    def over(self):
        """Past the time budget, or the service stopped answering."""
        return (self.failures_in_a_row > 20
                or time.monotonic() - self.started > self.seconds)


def conclude(name, unit, targets, budget, findings, sentinel):
    """Print what a fuzz sent, then fail with every finding, the sentinel's
    state after the fuzz included, or on a target it did not reach."""
    elapsed = time.monotonic() - budget.started
    print(f"\n{name}: {findings.sent} {unit} over {len(targets)} targets in "
          f"{elapsed:.1f} s ({budget.duplicates} duplicate examples skipped, "
          f"{budget.stopped} past the time budget)" + findings.timing())
    for problem in sentinel.problems():
        findings.note(f"after the fuzz: {problem}")
    if findings.found:
        pytest.fail(findings.report(name), pytrace=False)
    unreached = [target for target in targets if budget.per_target.get(target, 0) < MIN_HITS]
    assert not unreached, f"fuzzed fewer than {MIN_HITS} times: {unreached}"


# -- the REST fuzz -----------------------------------------------------------

LONG_ID = "a" * 1025  # past DynamoDB's 1024-byte key limit
DEEP_LIST = "[" * 975 + "]" * 975
DEEP_OBJECT = '{"a":' * 975 + "1" + "}" * 975
# Requests sent before the random ones, whatever the time budget: the shapes
# that broke the service before (method, route, path, body).
REST_SEEDS = [
    ("POST", "/v2/queues/{q}/share", f"/v2/queues/{QUEUE}/share", '{"paths": [[]]}'),
    ("POST", "/v2/queues/{q}/share", f"/v2/queues/{QUEUE}/share", '{"methods": [[]]}'),
    ("POST", "/v2/queues/{q}/messages", f"/v2/queues/{QUEUE}/messages",
     '{"messages": [{"body": ' + DEEP_LIST + "}]}"),
    ("POST", "/v2/queues/{q}/messages", f"/v2/queues/{QUEUE}/messages",
     '{"messages": [{"body": 1e400}]}'),
    ("PUT", "/v2/queues/{q}", "/v2/queues/fuzz-deep", '{"x": ' + DEEP_OBJECT + "}"),
    ("POST", "/v2/queues/{q}/claims", f"/v2/queues/{QUEUE}/claims", DEEP_LIST),
    ("PUT", "/v2/queues/{q}", "/v2/queues/.", None),
    ("PUT", "/v2/queues/{q}", "/v2/queues/..", None),
    ("GET", "/v2/queues/{q}/subscriptions/{sid}",
     f"/v2/queues/{QUEUE}/subscriptions/{LONG_ID}", None),
    ("DELETE", "/v2/queues/{q}/subscriptions/{sid}",
     f"/v2/queues/{QUEUE}/subscriptions/{LONG_ID}", None),
    ("PATCH", "/v2/queues/{q}/subscriptions/{sid}",
     f"/v2/queues/{QUEUE}/subscriptions/{LONG_ID}", '{"ttl": 3600}'),
    ("PUT", "/v2/queues/{q}/subscriptions/{sid}/confirm",
     f"/v2/queues/{QUEUE}/subscriptions/{LONG_ID}/confirm", '{"confirmed": true}'),
    ("GET", "/v2/queues/{q}/subscriptions", f"/v2/queues/{QUEUE}/subscriptions?marker={LONG_ID}",
     None),
    ("GET", "/v2/queues", f"/v2/queues?marker={LONG_ID}", None),
    ("GET", "/v2/queues/{q}/messages", f"/v2/queues/{QUEUE}/messages?marker={LONG_ID}", None),
    ("GET", "/v2/queues/{q}/messages/{mid}", f"/v2/queues/{QUEUE}/messages/{LONG_ID}", None),
    ("GET", "/v2/queues/{q}/claims/{cid}", f"/v2/queues/{QUEUE}/claims/{LONG_ID}", None),
    ("DELETE", "/v2/queues/{q}/messages", f"/v2/queues/{QUEUE}/messages?ids={LONG_ID}", None),
]


PATCH_TYPE = "application/openstack-messaging-v2.0-json-patch"
# A plain body per route that takes one, for the breadth seeds.
PLAIN_REST_BODIES = {
    ("PUT", "/v2/queues/{q}"): '{"note": "plain"}',
    ("PATCH", "/v2/queues/{q}"): '[{"op": "add", "path": "/metadata/note", "value": 1}]',
    ("POST", "/v2/queues/{q}/purge"): '{"resource_types": ["subscriptions"]}',
    ("POST", "/v2/queues/{q}/share"): "{}",
    ("POST", "/v2/queues/{q}/messages"): '{"messages": [{"body": "plain"}]}',
    ("POST", "/v2/queues/{q}/claims"): "{}",
    ("PATCH", "/v2/queues/{q}/claims/{cid}"): '{"ttl": 60}',
    ("POST", "/v2/queues/{q}/subscriptions"): json.dumps({"subscriber": WEBHOOK + "/plain"}),
    ("PATCH", "/v2/queues/{q}/subscriptions/{sid}"): '{"ttl": 3600}',
    ("PUT", "/v2/queues/{q}/subscriptions/{sid}/confirm"): '{"confirmed": true}',
}


def breadth_seeds(world):
    """MIN_HITS plain requests per route, whatever the draws: the project
    named by X-Project-ID, then by the legacy X-Tenant-Id."""
    refs = {"{q}": QUEUE, "{mid}": Ref("mid").resolve(world), "{cid}": world.claim_id,
            "{sid}": world.subscription_id}
    for method, template in ROUTES:
        path = template
        for ref, value in refs.items():
            path = path.replace(ref, value)
        content_type = PATCH_TYPE if template == "/v2/queues/{q}" and method == "PATCH" \
            else "application/json"
        identity = headers(project=world.project, Content_Type=content_type)
        legacy = dict(identity)
        legacy["X-Tenant-Id"] = legacy.pop("X-Project-ID")
        for sent in (identity, legacy):
            yield (method, template), RestRequest(method, template, path, sent,
                                                  PLAIN_REST_BODIES.get((method, template)))


def test_rest_fuzz(http_client, sentinel):
    http = http_client
    world = World(project="fuzz-rest")
    findings = Findings()
    budget = Budget(REST_BUDGET_S)

    def send(route, request):
        if not budget.novel(request.method, request.path, request.headers, request.body):
            return
        if budget.count % REFILL_EVERY == 0:
            refill(http, world)
        budget.count += 1
        budget.per_target[route] = budget.per_target.get(route, 0) + 1
        started = time.monotonic()
        answer = http.send(request.method, request.path, request.headers, request.body)
        findings.timed(time.monotonic() - started, request)
        findings.sent += 1
        if os.environ.get("FUZZ_LOG"):  # every request and its status, to tune the fuzz
            with open(os.environ["FUZZ_LOG"], "a") as log:
                log.write(f"{answer.status} {request.describe()[:300]!r}\n")
        budget.failures_in_a_row = budget.failures_in_a_row + 1 if answer.status == 0 else 0
        document = check_rest_answer(request, answer, findings, http)
        if 200 <= answer.status < 300:
            read_back_rest(request, document, answer, http, findings)

    refill(http, world)
    for route, request in breadth_seeds(world):
        send(route, request)
    for method, template, path, body in REST_SEEDS:
        identity = headers(project=world.project, Content_Type="application/json")
        send((method, template), RestRequest(method, template, path, identity, body))

    @settings(max_examples=REST_EXAMPLES, **FUZZ_SETTINGS)
    @given(data=st.data())
    def fuzz(data):
        # Everything is drawn even past the budget: hypothesis wants every
        # example to draw alike.
        route = data.draw(st.sampled_from(WEIGHTED_ROUTES), label="route")
        method, template = route
        if data.draw(st.integers(0, 19), label="other method") == 0:
            method = data.draw(st.sampled_from(OTHER_METHODS), label="method")
        raw = data.draw(st.integers(0, 4), label="raw path") == 0
        path = ""
        for part in template.split("/")[1:]:
            if part.startswith("{"):
                segment = data.draw(SEGMENT_STRATEGIES[part[1:-1]], label=part)
                path += "/" + encode_segment(resolve(segment, world), raw)
            else:
                path += "/" + part
        path = path or "/"
        if data.draw(st.integers(0, 2), label="query?") < (2 if route in ROUTE_PARAMS else 1):
            query = encode_query(data.draw(queries(route), label="query"), world)
            if query:
                path += "?" + query
        drawn_headers = data.draw(rest_headers(route), label="headers")
        body = data.draw(bodies(route), label="body")
        if budget.over():
            budget.stopped += 1
            return
        send(route, RestRequest(method, template, path, resolve_headers(drawn_headers, world),
                                body))

    fuzz()
    conclude("REST fuzz", "requests", ROUTES, budget, findings, sentinel)


# -- websocket ---------------------------------------------------------------

# Pools and flavors (a pooling stage's admin frames; this runner has none).
POOL_NAMES = st.sampled_from(["p1", "gold", "x" * 65, ""])
POOL_URIS = st.sampled_from(["dynamodb://us-east-1/pool-a", "redis://127.0.0.1:6379",
                             "dynamodb://us-east-1/p?endpoint=http://127.0.0.1:9"])
WS_FIELDS = {
    "queue_name": queue_refs,
    "metadata": st.one_of(queue_metadata, json_values),
    "marker": st.one_of(st.builds(Ref, st.just("mid"), st.integers(0, 50)),
                        st.just(Ref("sid")), segments, json_values),
    "limit": ints, "pop": ints, "ttl": ints, "grace": ints,
    "detailed": st.one_of(st.booleans(), json_values),
    "echo": st.one_of(st.booleans(), json_values),
    "include_claimed": st.one_of(st.booleans(), json_values),
    "include_delayed": st.one_of(st.booleans(), json_values),
    "resource_types": st.one_of(st.lists(st.sampled_from(
        ["messages", "subscriptions", "x"]), max_size=3), json_values),
    "messages": st.one_of(messages_doc, st.lists(st.fixed_dictionaries(
        {"body": json_values}), min_size=1, max_size=2), json_values),
    "message_id": st.one_of(message_refs, json_values),
    "message_ids": st.one_of(st.lists(message_refs, max_size=3), json_values),
    "claim_id": st.one_of(claim_refs, json_values),
    "claim_ids": st.one_of(st.lists(claim_refs, max_size=2), json_values),
    "subscription_id": st.one_of(subscription_refs, json_values),
    "subscriber": subscribers,
    "options": st.one_of(st.dictionaries(st.sampled_from(["_retry_policy", "x"]),
                                         json_values, max_size=2), json_values),
    **{name: st.one_of(strategy, json_values) for name, strategy in (
        ("pool_name", POOL_NAMES), ("flavor_name", POOL_NAMES), ("weight", ints),
        ("uri", POOL_URIS), ("flavor", POOL_NAMES),
        ("pool_list", st.lists(POOL_NAMES, max_size=3)), ("capabilities", json_values))},
}
mids = st.builds(Ref, st.just("mid"), st.integers(0, 50))
WS_PLAUSIBLE = {
    "queue_name": st.one_of(st.just(Ref("q")), st.just(Ref("q-empty")),
                            st.from_regex(r"[a-z0-9_-]{1,20}", fullmatch=True)),
    "metadata": st.fixed_dictionaries({"_default_message_ttl": seconds, "note": free_json}),
    "marker": st.one_of(mids, st.just(Ref("sid"))),
    "limit": st.integers(1, 20), "pop": st.integers(1, 5), "ttl": seconds, "grace": seconds,
    "detailed": st.booleans(), "echo": st.booleans(), "include_claimed": st.booleans(),
    "include_delayed": st.booleans(),
    "resource_types": st.lists(st.sampled_from(["messages", "subscriptions"]), min_size=1,
                               max_size=2),
    "pool_name": POOL_NAMES, "flavor_name": POOL_NAMES, "flavor": POOL_NAMES,
    "weight": st.integers(0, 100), "uri": POOL_URIS,
    "pool_list": st.lists(POOL_NAMES, min_size=1, max_size=2),
    "capabilities": st.just({}),
    "messages": st.lists(st.fixed_dictionaries({"body": free_json, "ttl": seconds}),
                         min_size=1, max_size=3),
    "message_id": mids, "message_ids": st.lists(mids, min_size=1, max_size=3),
    "claim_id": st.just(Ref("cid")), "claim_ids": st.lists(st.just(Ref("cid")), min_size=1,
                                                           max_size=1),
    "subscription_id": st.just(Ref("sid")),
    "subscriber": st.builds(lambda n: f"{WEBHOOK}/{n}", st.integers(0, 10 ** 6)),
    "options": st.fixed_dictionaries({"note": free_json}),
}
ACTION_FIELDS = {
    "authenticate": [], "ping": [], "ping_node": [], "check_node_health": [],
    "get_home_doc": [],
    "queue_list": ["marker", "limit", "detailed"],
    "queue_create": ["queue_name", "metadata"],
    "queue_get": ["queue_name"], "queue_delete": ["queue_name"],
    "queue_get_stats": ["queue_name"], "queue_purge": ["queue_name", "resource_types"],
    "message_post": ["queue_name", "messages"],
    "message_list": ["queue_name", "marker", "limit", "echo", "include_claimed",
                     "include_delayed"],
    "message_get": ["queue_name", "message_id"],
    "message_get_many": ["queue_name", "message_ids"],
    "message_delete": ["queue_name", "message_id", "claim_id"],
    "message_delete_many": ["queue_name", "message_ids", "pop", "claim_ids"],
    "claim_create": ["queue_name", "limit", "ttl", "grace"],
    "claim_get": ["queue_name", "claim_id"],
    "claim_update": ["queue_name", "claim_id", "ttl", "grace"],
    "claim_delete": ["queue_name", "claim_id"],
    "subscription_create": ["queue_name", "subscriber", "ttl", "options"],
    "subscription_get": ["queue_name", "subscription_id"],
    "subscription_list": ["queue_name", "marker", "limit"],
    "subscription_delete": ["queue_name", "subscription_id"],
    "pool_list": ["marker", "limit", "detailed"],
    "pool_create": ["pool_name", "weight", "uri", "flavor", "options"],
    "pool_get": ["pool_name", "detailed"],
    "pool_update": ["pool_name", "weight", "uri", "flavor", "options"],
    "pool_delete": ["pool_name"],
    "flavor_list": ["marker", "limit", "detailed"],
    "flavor_create": ["flavor_name", "pool_list", "capabilities"],
    "flavor_get": ["flavor_name"],
    "flavor_update": ["flavor_name", "pool_list", "capabilities"],
    "flavor_delete": ["flavor_name"],
}
ACTIONS = list(ACTION_FIELDS)
# Actions that store what they are given are drawn more often: what they
# accept must read back as JSON.
WEIGHTED_ACTIONS = ACTIONS + ["message_post"] * 3 + ["queue_create"] * 2 + [
    "subscription_create", "claim_create", "message_list", "queue_list"]
# Binary payloads msgpack carries and JSON cannot.
MSGPACK_ODDITIES = [b"\x00\xffbytes", msgpack.ExtType(5, b"ext"),
                    msgpack.ExtType(127, b"\x00" * 12),
                    msgpack.Timestamp(1, 0),
                    float("inf"), float("-inf"), float("nan"), -0.0, 2 ** 64 - 1, -2 ** 63,
                    {1: "int key"}, {b"k": "bytes key"}, {None: 1}, {1.5: 2}]
BAD_FRAMES = ["{not json", "", "[]", "null", '"text"', "1e400", "NaN", "[" * 975 + "]" * 975,
              '{"action": "ping", "headers": ' + "[" * 975 + "]" * 975 + "}",
              '{"action": 1e400}', '{"action": "ping", "headers": {"Client-ID": 1e400}}',
              "\ufeff{}", "{}" + " " * 200_000]


def test_the_action_list_is_the_services():
    from chalicelib.websocket.dispatch import ACTIONS as SERVICE_ACTIONS
    assert set(ACTION_FIELDS) == set(SERVICE_ACTIONS)


@st.composite
def ws_frames(draw, action):
    """(frame object or raw text, binary?, uses the world's headers?)."""
    kind = draw(st.integers(0, 24))
    if kind == 0:
        return draw(st.sampled_from(BAD_FRAMES)), False, True
    if kind == 1:
        action = draw(st.one_of(st.sampled_from(["", "pool_list", "flavor_create", "PING",
                                                 "queue_update", "subscription_update",
                                                 "a" * 3000]), json_values))
    headers_drawn = {"Client-ID": CLIENT_ID, "X-Project-ID": "<world>"}
    normal = draw(st.integers(0, 5)) > 0
    if not normal:
        for name, choices in (("Client-ID", CLIENT_IDS), ("X-Project-ID", PROJECTS),
                              ("X-Roles", ROLES)):
            if draw(st.booleans()):
                value = draw(st.one_of(st.sampled_from(choices), json_values))
                headers_drawn[name] = value.decode("latin-1") if isinstance(value, bytes) \
                    else value
        if draw(st.integers(0, 3)) == 0:
            headers_drawn[draw(st.sampled_from(["client-id", "X-Tenant-Id", "URL-Signature",
                                                "X-Auth-Token"]))] = draw(json_values)
        if draw(st.integers(0, 5)) == 0:
            headers_drawn = draw(json_values)
    fields = ACTION_FIELDS.get(action, []) if isinstance(action, str) else []
    body = {}
    if normal and kind > 12 and fields:
        # A valid body, then (most often) one value in it made hostile.
        for name in fields:
            if name == "queue_name" or draw(st.booleans()):
                body[name] = draw(WS_PLAUSIBLE[name])
        body = draw(one_hostile(st.just(body), st.one_of(json_values, segments)))
    else:
        for name in fields:
            if name == "queue_name" or draw(st.booleans()):
                if draw(st.integers(0, 9)) > 0:
                    body[name] = draw(WS_FIELDS[name])
    if draw(st.integers(0, 5)) == 0:
        body[draw(st.sampled_from(list(WS_FIELDS) + ["junk"]))] = draw(json_values)
    frame = {"action": action, "headers": headers_drawn, "body": body}
    if draw(st.integers(0, 9)) == 0:
        frame["body"] = draw(json_values)
    if draw(st.integers(0, 14)) == 0:
        del frame[draw(st.sampled_from(["action", "headers", "body"]))]
    binary = draw(st.integers(0, 4)) == 0
    if binary and draw(st.integers(0, 2)) > 0:
        oddity = draw(st.sampled_from(MSGPACK_ODDITIES))
        target = frame["body"] if isinstance(frame.get("body"), dict) else frame
        slot = draw(st.sampled_from(["metadata", "messages", "messages", "marker",
                                     "queue_name", "extra"]))
        target[slot] = {"metadata": {"x": oddity},
                        "messages": [{"body": oddity}]}.get(slot, oddity)
    return frame, binary, normal


@dataclass
class WsRequest:
    action: object
    frame: object  # str or bytes sent
    shown: str

    def size(self):
        return len(self.frame)

    def describe(self):
        kind = "binary msgpack" if isinstance(self.frame, bytes) else "text"
        return f"{kind} frame ({len(self.frame)} bytes): {shorten(self.shown, 500)}"


class WsAnswer:
    def __init__(self, raw, error=""):
        self.raw, self.error = raw, error

    def describe(self):
        """Status and body first, then the echo of the request, shortened."""
        if self.error:
            return self.error
        binary = isinstance(self.raw, bytes)
        try:
            document = (msgpack.unpackb(self.raw, strict_map_key=False) if binary
                        else json.loads(self.raw, parse_constant=NonFinite))
        except Exception:  # noqa: BLE001 - shown as is (RecursionError too)
            return ("binary " if binary else "") + shorten(repr(self.raw), 400)
        if not (isinstance(document, dict) and "body" in document):
            return ("binary " if binary else "") + shorten(self.raw, 400)
        show = repr if binary else json.dumps
        try:
            return (f"{'binary ' if binary else ''}headers {show(document.get('headers'))}, "
                    f"body {shorten(show(document['body']), 300)}, "
                    f"request echo {shorten(show(document.get('request')), 160)}")
        except RecursionError:
            return ("binary " if binary else "") + shorten(repr(self.raw), 400)


class WsClient:
    def __init__(self, url):
        assert urlsplit(url).hostname == "127.0.0.1"
        self.url = url
        self.socket = None

    def open(self):
        if self.socket is None:
            self.socket = connect(self.url, max_size=None, compression=None,
                                  open_timeout=REQUEST_TIMEOUT_S, legacy=True,
                                  ping_interval=None)
        return self.socket

    def close(self):
        if self.socket is not None:
            try:
                self.socket.close()
            finally:
                self.socket = None

    def ask(self, frame):
        """The answer frame (pushes to the connection skipped), or a WsAnswer
        with .error set."""
        try:
            socket = self.open()
            socket.send(frame)
            deadline = time.monotonic() + REQUEST_TIMEOUT_S
            while True:
                raw = socket.recv(timeout=max(0.1, deadline - time.monotonic()))
                if not is_push(raw):
                    return WsAnswer(raw)
        except TimeoutError:
            self.close()
            return WsAnswer(None, f"no answer within {REQUEST_TIMEOUT_S:.0f} s")
        except ConnectionClosed as closed:
            self.close()
            return WsAnswer(None, f"the connection was closed: {closed}")
        except (OSError, InvalidStatus) as failure:
            self.close()
            return WsAnswer(None, f"no connection: {type(failure).__name__}: {failure}")


def is_push(raw):
    try:
        document = (msgpack.unpackb(raw, strict_map_key=False) if isinstance(raw, bytes)
                    else json.loads(raw))
    except Exception:  # noqa: BLE001 - not a push, then
        return False
    return isinstance(document, dict) and document.get("Message_Type") == "Notification"


def encode_frame(frame, binary):
    if isinstance(frame, str):
        return frame, frame
    if binary:
        value = to_msgpack_value(frame)
        try:
            return msgpack.packb(value), repr(value)
        except (ValueError, OverflowError, TypeError):
            return dump(frame), dump(frame)
    text = dump(frame)
    return text, text


# Errors whose body §10.3 gives otherwise: stats of a missing queue (zeros),
# a duplicate subscription (a string).
DOCUMENTED_ERROR_BODIES = {("queue_get_stats", 404), ("subscription_create", 409)}


def ws_status(answer):
    try:
        document = (msgpack.unpackb(answer.raw, strict_map_key=False)
                    if isinstance(answer.raw, bytes) else json.loads(answer.raw))
        return document["headers"]["status"]
    except Exception:  # noqa: BLE001 - no status, then
        return None


class NonFinite(str):
    """NaN or an infinity, as a tolerant parse of an answer keeps it."""


def first_non_json(value):
    """A description of the first thing in `value` that JSON cannot carry
    (NaN, an infinity, bytes, ext types, a non-string key), or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, NonFinite):
            return f"{item.lstrip('-')} (not JSON)"
        if isinstance(item, float) and not math.isfinite(item):
            return "NaN (not JSON)" if math.isnan(item) else "Infinity (not JSON)"
        if isinstance(item, (bytes, msgpack.ExtType, msgpack.Timestamp)):
            return f"a {type(item).__name__} value (not JSON)"
        if isinstance(item, dict):
            for key, member in item.items():
                if not isinstance(key, str):
                    return f"a {type(key).__name__} key (not JSON)"
                stack.append(member)
        elif isinstance(item, list):
            stack.extend(item)
    return None


def check_ws_answer(request, answer, findings, client):
    """The answer's document, or None."""
    where = f"ws {request.action if isinstance(request.action, str) else '<odd action>'}"
    if answer.error:
        findings.add(where, f"websocket: {answer.error.split(':')[0]}", request, answer)
        return None
    raw = answer.raw
    try:
        if isinstance(raw, bytes):
            document = msgpack.unpackb(raw, strict_map_key=False)
        else:
            document = json.loads(raw, parse_constant=NonFinite)
    except (ValueError, TypeError, RecursionError, msgpack.UnpackException) as failure:
        findings.add(where, f"websocket: answer does not parse ({type(failure).__name__})",
                     request, answer)
        return None
    if isinstance(request.frame, bytes) != isinstance(raw, bytes):
        findings.add(where, "websocket: answer not in the request's encoding", request, answer)
    if not isinstance(document, dict):
        findings.add(where, "websocket: answer is not an object", request, answer)
        return None
    # The body is what the service says (a REST read shows the same data);
    # the echo repeats the request, which over msgpack may hold anything.
    odd = first_non_json(document.get("body"))
    if odd:
        findings.add(where, f"websocket: answer body holds {odd}", request, answer)
    if not isinstance(raw, bytes):
        odd = first_non_json(document.get("request"))
        if odd:
            findings.add(where, f"websocket: a text answer's request echo holds {odd}",
                         request, answer)
    status = document.get("headers", {}).get("status") if isinstance(
        document.get("headers"), dict) else None
    if not isinstance(status, int) or isinstance(status, bool):
        findings.add(where, "websocket: answer without an int headers.status", request, answer)
        return None
    if status >= 500 and status != 503:
        findings.add(where, f"websocket: status {status}", request, answer)
    body = document.get("body")
    documented = (str(request.action), status) in DOCUMENTED_ERROR_BODIES
    if status >= 400 and not documented and not (
            isinstance(body, dict) and ("error" in body or "exception" in body)):
        findings.add(where, f"websocket: {status} without an error body", request, answer)
    if status == 503:
        time.sleep(0.5)
        again = client.ask(request.frame)
        if ws_status(again) == 503:
            findings.add(where, "websocket: 503 again on a retry: the input decides it "
                         "(should be a 4xx)", request, again)
    return document


def read_back_ws(request, frame, document, client, findings, headers_used):
    """What a websocket frame stored must read back as strict JSON."""
    status = document["headers"]["status"]
    if not (200 <= status < 300) or not isinstance(frame, dict) or not isinstance(
            frame.get("body"), dict):
        return
    action, body = frame.get("action"), frame["body"]
    binary = isinstance(request.frame, bytes)
    reads = []
    if action == "queue_create":
        name = body.get("queue_name")
        if name in DOT_NAMES:
            findings.add("ws queue_create", "websocket: queue name '.' or '..' accepted", request,
                         WsAnswer(json.dumps(document)))
        reads.append({"action": "queue_get", "body": {"queue_name": name}})
    elif action == "message_post" and isinstance(document.get("body"), dict):
        reads.append({"action": "message_get_many", "body": {
            "queue_name": body.get("queue_name"),
            "message_ids": document["body"].get("message_ids")}})
    elif action == "subscription_create" and isinstance(document.get("body"), dict):
        reads.append({"action": "subscription_get", "body": {
            "queue_name": body.get("queue_name"),
            "subscription_id": document["body"].get("subscription_id")}})
    for read in reads:
        read["headers"] = headers_used
        sent, shown = encode_frame(read, binary)
        read_request = WsRequest(f"{read['action']} (read back after {action})", sent, shown)
        check_ws_answer(read_request, client.ask(sent), findings, client)


PLAIN_WS_VALUES = {
    "queue_name": Ref("q"), "message_id": Ref("mid"), "message_ids": [Ref("mid")],
    "claim_id": Ref("cid"), "subscription_id": Ref("sid"), "messages": [{"body": "plain"}],
    "subscriber": WEBHOOK + "/plain",
}


def ws_breadth_seeds():
    """MIN_HITS plain frames per action, whatever the draws: as text and as
    msgpack, as (frame, binary)."""
    for action in ACTIONS:
        body = {name: PLAIN_WS_VALUES[name] for name in ACTION_FIELDS[action]
                if name in PLAIN_WS_VALUES}
        for binary in (False, True):
            yield {"action": action, "headers": "<world>", "body": body}, binary


def ws_seeds():
    """Frames sent before the random ones, whatever the time budget: the
    shapes that broke the service before, as (frame, binary)."""
    def frame(action, **body):
        return {"action": action, "headers": "<world>", "body": body}
    q = Ref("q")
    return [
        (frame("queue_create", queue_name="fuzz-inf", metadata={"x": Raw("1e400")}), False),
        (frame("message_post", queue_name=q, messages=[{"body": Raw("1e400")}]), False),
        (frame("message_post", queue_name=q, messages=[{"body": {"x": Raw("-1e400")}}]), False),
        (frame("message_post", queue_name=q, messages=[{"body": Raw(DEEP_LIST)}]), False),
        (frame("queue_create", queue_name="fuzz-deep", metadata={"x": Raw(DEEP_OBJECT)}),
         False),
        (frame("queue_create", queue_name="."), False),
        (frame("queue_create", queue_name=".."), False),
        (frame("message_post", queue_name=q, messages=[{"body": b"\x00\xff"}]), True),
        (frame("message_post", queue_name=q, messages=[{"body": msgpack.ExtType(5, b"x")}]),
         True),
        (frame("message_post", queue_name=q, messages=[{"body": float("inf")}]), True),
        (frame("message_post", queue_name=q, messages=[{"body": {1: "int key"}}]), True),
        (frame("queue_create", queue_name="fuzz-bin", metadata={"x": b"\x00"}), True),
        ({"action": "ping", "headers": dict(headers(project="fuzz-ws"), **{"client-id": 1.5})},
         True),
        (frame("subscription_get", queue_name=q, subscription_id=LONG_ID), False),
        (frame("subscription_delete", queue_name=q, subscription_id=LONG_ID), False),
        (frame("subscription_list", queue_name=q, marker=LONG_ID), False),
        (frame("queue_list", marker=LONG_ID), False),
        (frame("message_list", queue_name=q, marker=LONG_ID), False),
        (frame("message_get", queue_name=q, message_id=LONG_ID), False),
        (frame("claim_get", queue_name=q, claim_id=LONG_ID), False),
    ]


def test_websocket_fuzz(local_runner, http_client, sentinel):
    http = http_client
    world = World(project="fuzz-ws")
    findings = Findings()
    budget = Budget(WS_BUDGET_S)
    main = WsClient(local_runner.ws_url)
    # The connection binds to the first project a frame names: the world's.
    first = main.ask(json.dumps({"action": "ping",
                                 "headers": headers(project=world.project)}))
    assert not first.error, first.error

    def send(action, frame, binary, normal):
        frame = resolve(frame, world)
        if isinstance(frame, dict) and frame.get("headers") == "<world>":
            frame["headers"] = headers(project=world.project)
        if isinstance(frame, dict) and isinstance(frame.get("headers"), dict) \
                and frame["headers"].get("X-Project-ID") == "<world>":
            frame["headers"]["X-Project-ID"] = world.project
        sent, shown = encode_frame(frame, binary)
        if not budget.novel(sent):
            return
        if budget.count % REFILL_EVERY == 0:
            refill(http, world)
        budget.count += 1
        budget.per_target[action] = budget.per_target.get(action, 0) + 1
        request = WsRequest(frame.get("action") if isinstance(frame, dict) else action,
                            sent, shown)
        # Frames with other identities go on a connection of their own.
        client = main if normal else WsClient(local_runner.ws_url)
        try:
            started = time.monotonic()
            answer = client.ask(sent)
            findings.timed(time.monotonic() - started, request)
            findings.sent += 1
            if os.environ.get("FUZZ_LOG"):  # every frame and its status, to tune the fuzz
                with open(os.environ["FUZZ_LOG"], "a") as log:
                    log.write(f"{ws_status(answer)} {request.describe()[:300]!r}\n")
            budget.failures_in_a_row = budget.failures_in_a_row + 1 \
                if answer.error.startswith("no connection") else 0
            document = check_ws_answer(request, answer, findings, client)
            if document is not None and normal:
                read_back_ws(request, frame, document, client, findings,
                             headers(project=world.project))
        finally:
            if client is not main:
                client.close()

    refill(http, world)
    for frame, binary in [*ws_breadth_seeds(), *ws_seeds()]:
        send(frame["action"], frame, binary, True)

    @settings(max_examples=WS_EXAMPLES, **FUZZ_SETTINGS)
    @given(data=st.data())
    def fuzz(data):
        action = data.draw(st.sampled_from(WEIGHTED_ACTIONS), label="action")
        frame, binary, normal = data.draw(ws_frames(action), label="frame")
        if budget.over():
            budget.stopped += 1
            return
        send(action, frame, binary, normal)

    try:
        fuzz()
    finally:
        main.close()
    conclude("websocket fuzz", "frames", ACTIONS, budget, findings, sentinel)


def test_a_websocket_connection_stays_usable_after_bad_frames(local_runner):
    """Each bad frame gets one answer frame, in order, and the connection
    then serves a ping and a listing as if nothing had happened."""
    project = f"fuzz-usable-{uuid.uuid4()}"
    ident = headers(project=project)
    bad = BAD_FRAMES + [
        b"\xc1", b"\x93\x01\x02\x03", msgpack.packb({"action": "ping", "headers": ident,
                                                     "body": {"x": b"\x00"}}),
        msgpack.packb({1: 2}, strict_types=False),
        json.dumps({"action": "no_such_action", "headers": ident}),
        json.dumps({"action": "queue_create", "headers": ident, "body": {"queue_name": 1}}),
        json.dumps({"action": "queue_list", "headers": headers(project="someone-else")}),
        '{"action": "queue_create", "headers": ' + json.dumps(ident)
        + ', "body": {"queue_name": "q", "metadata": {"x": 1e400}}}',
        '{"action": "message_post", "headers": ' + json.dumps(ident)
        + ', "body": {"queue_name": "q", "messages": [{"body": ' + "[" * 975 + "]" * 975
        + "}]}}",
    ]
    with connect(local_runner.ws_url, max_size=None, compression=None,
                 open_timeout=REQUEST_TIMEOUT_S) as socket:
        socket.send(json.dumps({"action": "ping", "headers": ident}))  # binds the project
        assert strict_json(socket.recv(timeout=REQUEST_TIMEOUT_S))["headers"]["status"] == 204
        for frame in bad:
            socket.send(frame)
        answers = [socket.recv(timeout=REQUEST_TIMEOUT_S) for _ in bad]
        socket.send(json.dumps({"action": "ping", "headers": ident}))
        socket.send(json.dumps({"action": "queue_list", "headers": ident}))
        pinged = strict_json(socket.recv(timeout=REQUEST_TIMEOUT_S))
        listed = strict_json(socket.recv(timeout=REQUEST_TIMEOUT_S))
        with pytest.raises(TimeoutError):  # one answer per frame, no more
            socket.recv(timeout=0.5)
    assert (pinged["request"]["action"], pinged["headers"]["status"]) == ("ping", 204)
    assert (listed["request"]["action"], listed["headers"]["status"]) == ("queue_list", 200)
    for frame, answer in zip(bad, answers):
        assert isinstance(answer, bytes) == isinstance(frame, bytes), (frame, answer)
    assert len(answers) == len(bad)

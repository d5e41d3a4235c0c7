"""The REST API's OpenAPI 3.1 description, built from the app's routes and
the schemas in `schemas/`.

The paths, methods, path parameters and who may call (open, or guarded) come
from the Chalice app's route table; the request bodies are the schemas the
actions check (`schemas/*.json`) and the response bodies are
`schemas/responses/*.json`, both with their `$setting` placeholders resolved
from the settings, as validation does. What a route answers (statuses,
headers, query parameters) is in OPERATIONS, one entry per view: a route
without one fails the build, so the description cannot silently lag the
routes. The 405 and OPTIONS fallbacks (rest.add_method_fallbacks) are not
operations: a method that is not described is answered 405.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import posixpath
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from chalicelib.auth import gateway
from chalicelib.rest import JSON, add_method_fallbacks
from chalicelib.rest.topics import TOPICS
from chalicelib.validation import PROJECT_ID_MAX, QUEUE_NAME_MAX, SCHEMA_DIR, resolve_placeholders

if TYPE_CHECKING:
    from chalicelib.config import Settings

PATCH_MEDIA_TYPE = "application/openstack-messaging-v2.0-json-patch"
FALLBACKS = f"{add_method_fallbacks.__qualname__}.<locals>."
PATH_PARAMETER = re.compile(r"\{(\w+)\}")
# Where a signed URL may stand in for a token (zaqar-v2-api.md §9).
SIGNABLE = re.compile(r"^/v2/queues/\{queue_name\}/(messages|claims|subscriptions)")


@dataclass(frozen=True)
class Answer:
    """One response: its meaning, its body (a schema file under schemas/,
    e.g. "responses/queue"), whether it names a Location, and the operations
    that may follow on the same queue (OpenAPI links)."""
    description: str
    body: str | None = None
    location: bool = False
    media_type: str = JSON
    next_on_queue: tuple[str, ...] = ()


@dataclass(frozen=True)
class Operation:
    summary: str
    answers: dict[int, Answer]
    query: tuple[str, ...] = ()
    body: str | dict | None = None  # a request schema's name, or a schema
    body_required: bool = False
    body_media_type: str = JSON
    served_at: str | None = None  # where the route answers, when not its Chalice path
    notes: dict[int, str] = field(default_factory=dict)  # errors' descriptions


def _ok(description, body=None, location=False, status=200, media_type=JSON,
        next_on_queue=()):
    return {status: Answer(description, body, location, media_type, next_on_queue)}


NO_CONTENT = "Done; no body."
SHARE_REQUEST = {
    "$comment": "Checked in code (actions/queues.py share).",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "paths": {"type": "array",
                  "items": {"enum": ["messages", "subscriptions", "claims"]}},
        "methods": {"type": "array", "items": {"type": "string"}},
        "expires": {"type": "string", "description": "ISO 8601, in the future"},
    },
}
SUBSCRIBER = {"type": "string", "description":
              "http, https, mailto, trust+http or trust+https URI"}


OPERATIONS = {
    "versions": Operation("The API versions", _ok("Versions", "responses/versions",
                                                   status=300)),
    "home": Operation("The JSON-home document", _ok(
        "Relations", "responses/home", media_type="application/json-home"),
        served_at="/v2/"),
    "ping": Operation("Whether the service and its storage answer", _ok(
        "Storage reachable (HEAD: the service answers)", status=204)),
    "health": Operation("Storage health, from real operations (admin mode, admin role)",
                        _ok("The report", "responses/health"),
                        notes={404: "Not in admin mode"}),
    "openapi_description": Operation("This description", _ok(
        "The OpenAPI description", "responses/openapi")),
    "list_queues": Operation(
        "List the project's queues, by name", _ok("A page of queues", "responses/queue_list"),
        query=("marker", "queue_limit", "detailed", "name", "with_count")),
    "create_queue": Operation(
        "Create a queue (its metadata is kept only on creation)",
        {201: Answer("Created", location=True, next_on_queue=(
            "get_queue", "patch_queue", "post_messages", "create_subscription")),
         204: Answer("It exists", location=True)},
        body="queue_metadata"),
    "get_queue": Operation("A queue's metadata, reserved keys filled in (also for a "
                           "missing queue)", _ok("The metadata", "responses/queue")),
    "patch_queue": Operation(
        "Change a queue's metadata with JSON-Patch operations",
        _ok("The metadata after the change", "responses/queue"), body="queue_patch",
        body_required=True, body_media_type=PATCH_MEDIA_TYPE,
        notes={404: "No such queue", 409: "A replace or remove of an absent key",
               415: "Any other Content-Type"}),
    "delete_queue": Operation("Delete a queue, its messages and claims",
                              _ok(NO_CONTENT, status=204)),
    "queue_stats": Operation("A queue's message counts", _ok("The counts",
                                                             "responses/queue_stats")),
    "purge_queue": Operation("Remove a queue's messages and/or subscriptions",
                             _ok(NO_CONTENT, status=204), body="queue_purge"),
    "share_queue": Operation("Sign a URL for the queue's messages, claims or "
                             "subscriptions", _ok("The signed URL's parts", "responses/share"),
                             body=SHARE_REQUEST, body_required=True),
    "post_messages": Operation(
        "Post messages (the queue is created if missing)",
        _ok("Posted", "responses/messages_posted", location=True, status=201,
            next_on_queue=("list_messages", "queue_stats", "create_claim", "delete_messages")),
        body="messages_post", body_required=True),
    "list_messages": Operation(
        "A page of messages, oldest first; or, with ids, those messages",
        _ok("Messages", "responses/message_list"),
        query=("ids", "marker", "message_limit", "echo", "include_claimed",
               "include_delayed"),
        notes={404: "None of the ids found"}),
    "delete_messages": Operation(
        "Delete messages by id, or pop (remove and return) unclaimed ones",
        {200: Answer("Popped", "responses/messages_popped"), 204: Answer(NO_CONTENT)},
        query=("ids", "pop", "claim_ids")),
    "get_message": Operation("One message", _ok("The message", "responses/message"),
                             notes={404: "No such message"}),
    "delete_message": Operation(
        "Delete a message (a claimed one with its claim's id)", _ok(NO_CONTENT, status=204),
        query=("claim_id",), notes={403: "Claimed, and no or another claim's id"}),
    "create_claim": Operation(
        "Claim messages",
        {201: Answer("Claimed", "responses/claimed", location=True),
         204: Answer("Nothing to claim")},
        query=("claim_limit",), body="claim_create"),
    "get_claim": Operation("A claim and its messages", _ok("The claim", "responses/claim"),
                           notes={404: "No such claim, or it expired"}),
    "update_claim": Operation("Renew a claim", _ok(NO_CONTENT, status=204),
                              body="claim_update", body_required=True,
                              notes={404: "No such claim, or it expired"}),
    "delete_claim": Operation("Release a claim", _ok(NO_CONTENT, status=204)),
    "list_subscriptions": Operation(
        "A page of the queue's subscriptions", _ok("Subscriptions",
                                                   "responses/subscription_list"),
        query=("marker", "subscription_limit")),
    "create_subscription": Operation(
        "Subscribe to the queue's messages (the queue is created if missing)",
        _ok("Subscribed (or an unconfirmed duplicate's id)", "responses/subscription_created",
            location=True, status=201, next_on_queue=("list_subscriptions",)),
        body={"allOf": [{"$ref": "subscription_fields.json"},
                        {"required": ["subscriber"],
                         "properties": {"subscriber": SUBSCRIBER}}]},
        notes={409: "A confirmed subscription to the same subscriber"}),
    "get_subscription": Operation("One subscription", _ok("The subscription",
                                                          "responses/subscription"),
                                  notes={404: "No such subscription"}),
    "update_subscription": Operation(
        "Change a subscription's subscriber, ttl or options",
        _ok(NO_CONTENT, location=True, status=204),
        body={"allOf": [{"$ref": "subscription_fields.json"},
                        {"minProperties": 1, "properties": {"subscriber": SUBSCRIBER}}]},
        body_required=True,
        notes={404: "No such subscription", 409: "Another subscription has that subscriber"}),
    "delete_subscription": Operation("Delete a subscription", _ok(NO_CONTENT, status=204)),
    "confirm_subscription": Operation(
        "Confirm (or unsubscribe) a subscription", _ok(NO_CONTENT, location=True, status=204),
        body="subscription_confirm", body_required=True,
        notes={404: "No such subscription"}),
    "claim_topic": Operation("Not served: topics have no claims",
                             {404: Answer("As for a path Zaqar does not have", "responses/error")}),
    "topic_claim": Operation("Not served: topics have no claims",
                             {404: Answer("As for a path Zaqar does not have", "responses/error")}),
    "create_key": Operation(
        "Issue an API key for a project (admin; shown this once)",
        _ok("The key and its record", "responses/key_issued", location=True, status=201),
        body="key_create", body_required=True,
        notes={404: "The stage takes no API keys"}),
    "list_keys": Operation("A project's API keys (admin; never the keys themselves)",
                           _ok("Their records", "responses/key_list"), query=("project",),
                           notes={404: "The stage takes no API keys"}),
    "get_key": Operation("One API key's record (admin)", _ok("The record", "responses/key"),
                         notes={404: "No such key, or the stage takes no API keys"}),
    "revoke_key": Operation("Revoke an API key (admin)", _ok(NO_CONTENT, status=204),
                            notes={404: "No such key, or the stage takes no API keys"}),
    **{name: Operation(summary, answers, query=query, body=body, body_required=bool(body),
                       notes={404: "Not a pooling stage in admin mode, or no such pool or "
                                   "flavor", **notes})
       for name, summary, answers, query, body, notes in (
        ("list_pools", "The pools, by name (admin)", _ok("A page of pools",
                                                         "responses/pool_list"),
         ("marker", "pool_limit", "detailed"), None, {}),
        ("create_pool", "Register a pool: a DynamoDB place for messages (admin)",
         _ok("Registered", location=True, status=201), (), "pool",
         {400: "A bad body, or cannot connect to the uri", 409: "The pool exists"}),
        ("get_pool", "A pool (admin)", _ok("The pool", "responses/pool"), ("detailed",),
         None, {}),
        ("update_pool", "Change a pool's uri, weight, flavor or options (admin)",
         _ok("The pool", "responses/pool"), (), "pool", {400: "A bad body"}),
        ("delete_pool", "Remove a pool (admin)", _ok(NO_CONTENT, status=204), (), None,
         {403: "A flavor uses the pool"}),
        ("list_flavors", "The flavors, by name", _ok("A page of flavors",
                                                     "responses/flavor_list"),
         ("marker", "pool_limit", "detailed"), None, {}),
        ("create_flavor", "Create or replace a flavor: a group of pools (admin)",
         _ok("Created", location=True, status=201), (), "flavor",
         {400: "A bad body, or a pool that does not exist"}),
        ("get_flavor", "A flavor and its pools", _ok("The flavor", "responses/flavor"), (),
         None, {}),
        ("update_flavor", "Change a flavor's pools and capabilities (admin)",
         _ok("The flavor", "responses/flavor"), (), "flavor",
         {400: "A bad body, or a pool that does not exist"}),
        ("delete_flavor", "Remove a flavor; its pools are untagged (admin)",
         _ok(NO_CONTENT, status=204), (), None, {}))},
}

# A topic route runs its queue route's view (rest/topics.py): the same
# operation, but a list of topics.
TOPIC_BODIES = {"responses/queue_list": "responses/topic_list"}
NAMED_PARAMETERS = ("queue_name", "topic_name")  # path parameters with a schema of their own

SIGNATURE_404 = "a URL signature that does not hold, or a path that names nothing"
ERRORS = {
    400: "A header, parameter or body that is not valid",
    401: "No token, or one Keystone refused",
    403: "The policy refuses the caller, or X-Project-ID names another project",
    404: SIGNATURE_404[0].upper() + SIGNATURE_404[1:],
    406: "The client does not accept application/json",
    503: "The storage failed; nothing was changed. Try again in a few seconds",
}


def _query_parameters(settings: Settings) -> dict[str, dict]:
    def limit(maximum, default):
        return {"name": "limit", "in": "query", "description": f"Default {default}",
                "schema": {"type": "integer", "minimum": 1, "maximum": maximum}}

    def boolean(name, description):
        return {"name": name, "in": "query", "description": description,
                "schema": {"type": "boolean", "default": False}}

    def ids(name, description):
        return {"name": name, "in": "query", "style": "form", "explode": False,
                "description": description,
                "schema": {"type": "array", "minItems": 1, "items": {"type": "string"},
                           "maxItems": settings.max_messages_per_page}}

    def text(name, description):
        return {"name": name, "in": "query", "description": description,
                "schema": {"type": "string"}}

    return {
        "marker": text("marker", "Where the previous page ended (its next link)"),
        "name": text("name", "Only queues whose name holds this"),
        "project": text("project", "The project whose API keys to list"),
        "claim_id": text("claim_id", "The claim holding the message"),
        "queue_limit": limit(settings.max_queues_per_page, 10),
        "pool_limit": limit(20, 10),
        "message_limit": limit(settings.max_messages_per_page, 10),
        "claim_limit": limit(settings.max_messages_per_claim_or_pop, 10),
        "subscription_limit": limit(settings.max_subscriptions_per_page, 10),
        "pop": {"name": "pop", "in": "query", "description": "How many to pop (not with ids)",
                "schema": {"type": "integer", "minimum": 1,
                           "maximum": settings.max_messages_per_claim_or_pop}},
        "detailed": boolean("detailed", "Show each queue's metadata"),
        "with_count": boolean("with_count", "Count the project's queues"),
        "echo": boolean("echo", "Include the caller's own (same Client-ID) messages"),
        "include_claimed": boolean("include_claimed", "Include claimed messages"),
        "include_delayed": boolean("include_delayed", "Include delayed messages (always "
                                                      "on a queue without a default delay)"),
        "ids": ids("ids", "Message ids, comma-separated"),
        "claim_ids": ids("claim_ids", "The messages' claims (with "
                                      "message_delete_with_claim_id)"),
    }


def _components_parameters(settings: Settings) -> dict[str, dict]:
    client_id = ({"type": "string", "format": "uuid"} if settings.client_id_uuid_safe != "off"
                 else {"type": "string", "minLength": settings.min_length_client_id,
                       "maxLength": settings.max_length_client_id})
    return {
        "ClientID": {"name": "Client-ID", "in": "header", "required": True,
                     "description": "The client's id: echo=false leaves out its own messages",
                     "schema": client_id},
        "ProjectID": {"name": "X-Project-ID", "in": "header",
                      # Behind Keystone the token names the project.
                      "required": settings.auth_strategy == "noauth",
                      "description": "The project acted for",
                      "schema": {"type": "string", "minLength": 1,
                                 "maxLength": PROJECT_ID_MAX}},
        **{name: {"name": name, "in": "path", "required": True, "schema": {
            "type": "string", "pattern": f"^[a-zA-Z0-9_.-]{{1,{QUEUE_NAME_MAX}}}$",
            "not": {"enum": [".", ".."]}}} for name in NAMED_PARAMETERS},
    }


def _headers() -> dict[str, dict]:
    return {
        "RequestId": {"description": "This request's id", "required": True,
                      "schema": {"type": "string", "pattern": "^req-[0-9a-f-]{36}$"}},
        "RequestIdUnlessGateway": {
            "description": "This request's id; none when API Gateway answers itself "
                           "(the authorizer failed)",
            "schema": {"type": "string", "pattern": "^req-[0-9a-f-]{36}$"}},
        "WWWAuthenticate": {"description": "Where to get a token: Keystone uri=\"...\"",
                            "schema": {"type": "string"}},
        "Location": {"description": "The resource's path", "required": True,
                     "schema": {"type": "string", "pattern": "^/v2/"}},
    }


class _Schemas:
    """components.schemas, filled from the files under schemas/ on first use:
    "responses/queue_list.json" becomes "responses.queue_list", its $defs
    "responses.queue_list.<name>", and references between files point there."""

    def __init__(self, settings: Settings):
        self.values = asdict(settings)
        self.components: dict[str, dict] = {}

    def ref(self, relative: str) -> dict:
        name = relative.removesuffix(".json").replace("/", ".")
        if name not in self.components:
            self.components[name] = {}  # taken, while its own references load
            with open(SCHEMA_DIR / relative) as schema_file:
                schema = resolve_placeholders(json.load(schema_file), self.values)
            base = posixpath.dirname(relative)
            for key, value in schema.pop("$defs", {}).items():
                self.components[f"{name}.{key}"] = self._rewrite(value, name, base)
            self.components[name] = self._rewrite(schema, name, base)
        return {"$ref": f"#/components/schemas/{name}"}

    def inline(self, schema: dict) -> dict:
        """A schema written here; its file references are under schemas/."""
        return self._rewrite(schema, "", "")

    def _rewrite(self, node, name, base):
        if isinstance(node, list):
            return [self._rewrite(item, name, base) for item in node]
        if not isinstance(node, dict):
            return node
        target = node.get("$ref")
        if isinstance(target, str):
            if target.startswith("#/$defs/"):
                node = {**node, "$ref": f"#/components/schemas/{name}.{target[8:]}"}
            elif not target.startswith("#"):
                node = {**node, **self.ref(posixpath.join(base, target))}
        return {key: value if key == "$ref" else self._rewrite(value, name, base)
                for key, value in node.items()}


def _error_headers(status: int, authorized: bool) -> dict[str, dict]:
    # Where an authorizer runs, API Gateway answers for it itself
    # (auth.gateway.gateway_responses): a 401 always, a 503 when it fails.
    # Only the function sets the request id, so those carry none.
    if authorized and status == 401:
        return {"WWW-Authenticate": {"$ref": "#/components/headers/WWWAuthenticate"}}
    if authorized and status == 503:
        return {"x-openstack-request-id": {"$ref": "#/components/headers/RequestIdUnlessGateway"}}
    return {"x-openstack-request-id": {"$ref": "#/components/headers/RequestId"}}


def _responses(operation: Operation, guarded: bool, settings: Settings,
               schemas: _Schemas) -> dict[str, dict]:
    request_id = {"x-openstack-request-id": {"$ref": "#/components/headers/RequestId"}}
    error = {JSON: {"schema": schemas.ref("responses/error.json")}}
    answers = {}
    for status, answer in operation.answers.items():
        headers = dict(request_id)
        if answer.location:
            headers["Location"] = {"$ref": "#/components/headers/Location"}
        described = {"description": answer.description, "headers": headers}
        if answer.next_on_queue:
            described["links"] = {name: {"operationId": name, "parameters": {
                "queue_name": "$request.path.queue_name"}} for name in answer.next_on_queue}
        if answer.body:
            described["content"] = {answer.media_type: {
                "schema": schemas.ref(f"{answer.body}.json")}}
        answers[str(status)] = described
    statuses = set(operation.notes) | {406}
    if guarded:
        statuses |= {400, 403, 404, 503}
        if settings.auth_strategy != "noauth":
            statuses.add(401)
    if operation.body is not None:
        statuses.add(400)
    for status in sorted(statuses):
        text = operation.notes.get(status) or ERRORS[status]
        if status == 404 and status in operation.notes and guarded:
            text += f"; or {SIGNATURE_404}"
        answers[str(status)] = {"description": text, "headers": _error_headers(
            status, guarded and settings.auth_strategy != "noauth"),
                                "content": error}
    return answers


def _as_topic(operation: Operation) -> Operation:
    """A queue route's operation as its topic twin answers it (rest/topics.py):
    a list of topics, and no links to queue operations."""
    return dataclasses.replace(operation, answers={
        status: dataclasses.replace(answer, body=TOPIC_BODIES.get(answer.body, answer.body),
                                    next_on_queue=())
        for status, answer in operation.answers.items()})


def _operation(view_name: str, method: str, path: str, settings: Settings,
               schemas: _Schemas) -> dict:
    topic = path.startswith(TOPICS)
    operation = _as_topic(OPERATIONS[view_name]) if topic else OPERATIONS[view_name]
    guarded = not gateway.is_open(method, path)
    query = _query_parameters(settings)
    parameters = [{"$ref": f"#/components/parameters/{name}"}
                  for name in PATH_PARAMETER.findall(path) if name in NAMED_PARAMETERS]
    parameters += [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                   for name in PATH_PARAMETER.findall(path) if name not in NAMED_PARAMETERS]
    if guarded:
        parameters += [{"$ref": "#/components/parameters/ClientID"},
                       {"$ref": "#/components/parameters/ProjectID"}]
    parameters += [query[name] for name in operation.query]
    described = {"operationId": f"topic_{view_name}" if topic else view_name,
                 "summary": operation.summary,
                 "responses": _responses(operation, guarded, settings, schemas)}
    if parameters:
        described["parameters"] = parameters
    if operation.body is not None:
        schema = (schemas.ref(f"{operation.body}.json") if isinstance(operation.body, str)
                  else schemas.inline(operation.body))
        described["requestBody"] = {"required": operation.body_required, "content": {
            operation.body_media_type: {"schema": schema}}}
    if not guarded:
        described["security"] = []
    elif settings.auth_strategy == "noauth":
        described["security"] = [{}]
    elif SIGNABLE.match(path):
        described["security"] = [{"keystone": []}, {"signedUrl": []}]
    return described


def _security_schemes() -> dict[str, dict]:
    return {
        "keystone": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                     "description": "A Keystone token (identity v3); the project and "
                                    "roles come from it"},
        "signedUrl": {"type": "apiKey", "in": "header", "name": "URL-Signature",
                      "description": "A signature from POST .../share, sent with "
                                     "URL-Expires, URL-Methods, URL-Paths and "
                                     "X-Project-ID as it returned them"},
    }


@functools.lru_cache(maxsize=4)
def describe(app, settings: Settings) -> dict:
    """The description of `app`'s REST routes under `settings`; built once
    per warm function (and settings), then shared: callers must not change it."""
    schemas = _Schemas(settings)
    paths: dict[str, dict] = {}
    for path, entries in app.routes.items():
        for method, entry in entries.items():
            if entry.view_function.__qualname__.startswith(FALLBACKS):
                continue
            if entry.view_name not in OPERATIONS:
                raise ValueError(f"{method} {path} ({entry.view_name}) is not described "
                                 "in chalicelib/rest/openapi.py OPERATIONS")
            served_at = OPERATIONS[entry.view_name].served_at or path
            described = _operation(entry.view_name, method, path, settings, schemas)
            if sum(other.view_name == entry.view_name for other in entries.values()) > 1:
                described["operationId"] += f"_{method.lower()}"  # e.g. ping_head
            paths.setdefault(served_at, {})[method.lower()] = described
    document = {
        "openapi": "3.1.0",
        "info": {"title": "Zaqar v2 API (serverless)", "version": "2",
                 "description": "OpenStack Zaqar's v2 messaging API on API Gateway, "
                                "Lambda and DynamoDB. Errors are {\"title\", "
                                "\"description\"}; every answer carries "
                                "x-openstack-request-id."},
        # Relative to this document (/v2/openapi.json): the API's root, behind
        # any stage prefix API Gateway puts in front of it.
        "servers": [{"url": "../"}],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.components.items())),
                       "parameters": _components_parameters(settings),
                       "headers": _headers(),
                       "securitySchemes": _security_schemes()},
    }
    if settings.auth_strategy != "noauth":
        document["security"] = [{"keystone": []}]
    return document

"""Zaqar's websocket protocol over API Gateway's WebSocket API (§10).

API Gateway calls a Lambda per event: $connect, each message ($default),
$disconnect. A message is one request frame; its answer goes back through
the management API (`push.send`), one frame per request, in the
request's encoding. Whatever is wrong with a frame, it gets an error frame
and the connection stays usable, but for one whose token expired: it is
told so and closed.

Authentication is in-band, as in Zaqar (§10.2): with Keystone, a connection
must first `authenticate` with a token (or, as the stage allows, an API key
or a JWT: the same credentials REST takes, in X-Auth-Token); from then on it
acts for the credential's project, with its roles, until it expires. Frames that carry
a URL signature need no token, for the message actions a signature can
allow (§9.3).
"""
import logging

from chalicelib import auth, clock, parameters, signed_urls, telemetry, throttle
from chalicelib.auth import Identity, policy
from chalicelib.errors import BadRequest, Unauthorized, ZaqarError
from chalicelib.storage import connections
from chalicelib.storage.errors import unexpected
from chalicelib.validation import request_project, validate
from chalicelib.websocket import frames, push
from chalicelib.websocket.dispatch import ACTIONS, SIGNED_METHODS, Call

log = logging.getLogger("zaqar.websocket")
# Titles of plain validation failures: their frames carry `"error": null`.
PLAIN_TITLES = {"Invalid API request", "Invalid request body", "Invalid parameter"}
TEXT_HEADERS = ("client-id", "x-project-id", "x-tenant-id", "x-tenant", "x-roles",
                "x-auth-token", "authorization")


def on_connect(event):
    connections.opened(event.connection_id)


def on_disconnect(event):
    connections.forget(event.connection_id)


class Refused(Exception):
    """A frame answered with Zaqar's bare `{"error": ...}`; `close`: the
    connection goes too."""

    def __init__(self, status, error, close=False):
        super().__init__(error)
        self.status, self.error, self.close = status, error, close


def on_message(event, settings):
    raw = event.to_dict()
    gateway_request_id = raw.get("requestContext", {}).get("requestId")
    served = telemetry.invocation("frame", telemetry.request_id_for(gateway_request_id),
                                  connection_id=event.connection_id,
                                  gateway_request_id=gateway_request_id)
    data, binary = frames.read_event(raw)
    request, status, body = answer(event, data, binary, settings)
    push.send(event.connection_id, frames.encode_answer(request, status, body, binary))
    if body is EXPIRED:
        push.close(event.connection_id)
    name = request.get("action")
    action = ACTIONS.get(name, (None, None))[1] if isinstance(name, str) else None
    queue = request["body"].get("queue_name") if isinstance(request["body"], dict) else None
    telemetry.finish(served, stage=settings.stage,
                     function_request_id=getattr(event.context, "aws_request_id", None),
                     status=status, frame_action=name, action=action or name,
                     queue=queue if isinstance(queue, str) else None)


def _error_body(error):
    return {"exception": error.description or error.title,
            "error": None if error.title in PLAIN_TITLES else error.title}


EXPIRED = {"error": "Authentication expired."}


def _authenticate(connection_id, headers, settings):
    """Zaqar's `authenticate` action with the stage's modes: (status, body)."""
    try:
        identity = auth.authenticate(headers, settings)
    except Unauthorized:
        return 401, {"error": "Authentication failed."}
    if identity.project is None:  # not a project-scoped token
        return 401, {"error": "Authentication failed."}
    # A key without expiry holds for the connection's life (API Gateway ends
    # it within LIFETIME_S); its revocation stops new authentications only.
    expires = identity.expires_ms
    if expires is None:
        expires = clock.now_ms() + connections.LIFETIME_S * 1000
    if not connections.authenticate(connection_id, connections.Caller(
            project=identity.project, roles=identity.roles, user_id=identity.user_id,
            expires_ms=expires)):
        return 403, {"error": "Not authenticated."}
    return 200, {"message": "Authentified."}


def _signed_caller(name, headers, body, settings):
    """The project a signed frame may act for (§9.3): the signature must
    allow the action's method on the queue's messages."""
    signature = {key: headers.get(key) for key in ("url-signature", "url-expires")}
    for key in ("url-methods", "url-paths"):
        value = headers.get(key)
        signature[key] = ",".join(value) if isinstance(value, list) and all(
            isinstance(item, str) for item in value) else value
    project = request_project(headers)
    path = f"/v2/queues/{body.get('queue_name')}/messages"
    if not (name in SIGNED_METHODS
            and all(isinstance(value, str) for value in signature.values())
            and signed_urls.allows(signature, parameters.signed_url_key(settings),
                                   SIGNED_METHODS[name], path, project, clock.now_ms())):
        raise Refused(403, "Not authorized.")
    return Identity(project=project, roles=frozenset())


def _caller(connection_id, name, headers, body, settings):
    if settings.auth_strategy == "noauth":
        return auth.authenticate(headers, settings)
    if headers.get("url-signature") is not None:
        return _signed_caller(name, headers, body, settings)
    caller = connections.caller(connection_id)
    if caller is None:
        raise Refused(403, "Not authentified.")
    if caller.expires_ms <= clock.now_ms():
        raise Refused(403, EXPIRED["error"], close=True)
    return Identity(project=caller.project, roles=caller.roles, user_id=caller.user_id,
                    expires_ms=caller.expires_ms)


def answer(event, data, binary, settings):
    """(echoed request, status, body) for one frame."""
    try:
        payload = frames.decode(data, binary)
    except frames.FrameError as error:
        return frames.echo(), 400, {"error": str(error)}
    request = frames.echo(payload)
    name = payload.get("action")
    if not (isinstance(name, str) and name in ACTIONS):
        return request, 400, {"error": f"{name} is not a valid action"}
    try:
        validate("ws_request", payload, settings)
    except BadRequest:
        return request, 400, {"error": "Schema validation failed."}
    # Header names are matched in any case from here on, so every spelling
    # of the ones read must hold text (the schema saw only one spelling).
    headers = {key.lower(): value for key, value in payload["headers"].items()}
    if not all(isinstance(headers.get(name, ""), str) for name in TEXT_HEADERS):
        return request, 400, {"error": "Schema validation failed."}
    body = payload.get("body", {})
    try:
        if name == "authenticate" and settings.auth_strategy != "noauth":
            return (request, *_authenticate(event.connection_id, headers, settings))
        identity = _caller(event.connection_id, name, headers, body, settings)
        ctx = auth.context_for(headers, identity, settings)
        telemetry.note(project=ctx.project)
        if (settings.auth_strategy == "noauth"
                and not connections.bind(event.connection_id, ctx.project)):
            # Zaqar 23.0.1's answer to a frame for another project.
            return request, 403, {"error": "Not authenticated."}
        action, rule = ACTIONS[name]
        if rule is not None:
            policy.enforce(rule, ctx.roles, settings)
        throttle.take(ctx.project, settings, clock.now_ms())
        call = Call(ctx=ctx, body=body,
                    subscriber=push.subscriber(event.domain_name, event.stage,
                                               event.connection_id, binary))
        status, body = action(call)
    except Refused as refused:
        return request, refused.status, (EXPIRED if refused.close else {"error": refused.error})
    except ZaqarError as error:
        return request, error.status, _error_body(error)
    except Exception as error:
        failure = unexpected(error)
        log.exception("%s on %s", failure.title, name)
        return request, failure.status, _error_body(failure)
    return request, status, body

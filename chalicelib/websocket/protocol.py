"""Zaqar's websocket protocol over API Gateway's WebSocket API (§10).

API Gateway calls a Lambda per event: $connect, each message ($default),
$disconnect. A message is one request frame; its answer goes back through
the management API (`push.send`), one frame per request, in the
request's encoding. Whatever is wrong with a frame, it gets an error frame
and the connection stays usable.
"""
import logging

from chalicelib.errors import BadRequest, ZaqarError
from chalicelib.storage import connections
from chalicelib.storage.errors import unexpected
from chalicelib.validation import make_context, validate
from chalicelib.websocket import frames, push
from chalicelib.websocket.dispatch import ACTIONS, Call

log = logging.getLogger("zaqar.websocket")
# Titles of plain validation failures: their frames carry `"error": null`.
PLAIN_TITLES = {"Invalid API request", "Invalid request body", "Invalid parameter"}
TEXT_HEADERS = ("client-id", "x-project-id", "x-tenant-id", "x-tenant", "x-roles",
                "x-auth-token")


def on_connect(event):
    connections.opened(event.connection_id)


def on_disconnect(event):
    connections.forget(event.connection_id)


def on_message(event, settings):
    data, binary = frames.read_event(event.to_dict())
    request, status, body = answer(event, data, binary, settings)
    push.send(event.connection_id, frames.encode_answer(request, status, body, binary))


def _error_body(error):
    return {"exception": error.description or error.title,
            "error": None if error.title in PLAIN_TITLES else error.title}


def answer(event, data, binary, settings):
    """(echoed request, status, body) for one frame."""
    try:
        payload = frames.decode(data, binary)
    except frames.FrameError as error:
        return frames.echo(), 400, {"error": str(error)}
    request = frames.echo(payload)
    name = payload.get("action")
    action = ACTIONS.get(name) if isinstance(name, str) else None
    if action is None:
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
    try:
        ctx = make_context(headers, settings)
        if not connections.bind(event.connection_id, ctx.project):
            # Zaqar 23.0.1's answer to a frame for another project.
            return request, 403, {"error": "Not authenticated."}
        call = Call(ctx=ctx, body=payload.get("body", {}),
                    subscriber=push.subscriber(event.domain_name, event.stage,
                                               event.connection_id, binary))
        status, body = action(call)
    except ZaqarError as error:
        return request, error.status, _error_body(error)
    except Exception as error:
        failure = unexpected(error)
        log.exception("%s on %s", failure.title, name)
        return request, failure.status, _error_body(failure)
    return request, status, body

"""Frames of Zaqar's websocket protocol (§10.1): reading a request, and
writing an answer in the request's own encoding (JSON in a text frame,
msgpack in a binary one)."""
import base64
import json

from chalicelib.errors import InvalidBody
from chalicelib.validation import check_json_value

# API Gateway carries at most 128 KB per websocket message, either way.
MAX_MESSAGE_BYTES = 128 * 1024
API_VERSION = "v2"


class FrameError(Exception):
    """A frame that cannot be read as a request: answered with a 400 frame
    whose body is `{"error": <message>}`."""


def _msgpack():
    # Imported on first use, and not packaged for Lambda: API Gateway closes
    # a connection that sends a binary frame (code 1003), so msgpack frames
    # reach the app only where something else serves the websocket (locally).
    import msgpack
    return msgpack


def read_event(event):
    """(data, binary) of an API Gateway websocket event: a binary frame
    arrives base64-encoded, flagged by isBase64Encoded."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body), True
    return body, False


def size_of(data):
    return len(data) if isinstance(data, bytes) else len(data.encode())


def decode(data, binary):
    """The request a frame holds, which must be an object."""
    if size_of(data) > MAX_MESSAGE_BYTES:
        raise FrameError(f"Request too large: {size_of(data)} bytes; a websocket "
                         f"message may hold at most {MAX_MESSAGE_BYTES} bytes.")
    kind = "binary (MessagePack)" if binary else "text (JSON)"
    try:
        payload = _msgpack().unpackb(data) if binary else json.loads(data)
    except Exception as error:  # any decoder failure is the client's
        raise FrameError(f"Can't decode {kind} request. "
                         f"{type(error).__name__}: {error}")
    # The checks a REST body gets: what is stored must come back as JSON.
    try:
        check_json_value(payload)
    except InvalidBody as error:
        raise FrameError(f"Can't decode {kind} request. {error.description}")
    if not isinstance(payload, dict):
        raise FrameError("Unexpected body type. Expected dict or dict like.")
    return payload


def encode(document, binary):
    return _msgpack().packb(document) if binary else json.dumps(document)


def echo(payload=None):
    """The `request` part of an answer: what was asked, as Zaqar shows it."""
    payload = payload or {}
    return {"action": payload.get("action"), "body": payload.get("body", {}),
            "headers": payload.get("headers"), "api": API_VERSION}


def answer(request, status, body):
    return {"request": request, "body": body, "headers": {"status": status}}


def encode_answer(request, status, body, binary):
    """The encoded answer, within API Gateway's message limit: if echoing the
    request's body would overflow it, the echo goes (clients never read it);
    if the answer itself is too large, an error says so instead."""
    data = encode(answer(request, status, body), binary)
    if size_of(data) <= MAX_MESSAGE_BYTES:
        return data
    data = encode(answer(dict(request, body={}), status, body), binary)
    if size_of(data) <= MAX_MESSAGE_BYTES:
        return data
    return encode(answer(dict(request, body={}), 400, {
        "exception": f"The answer is {size_of(data)} bytes; a websocket message "
                     f"may hold at most {MAX_MESSAGE_BYTES} bytes. Ask for fewer "
                     "messages.",
        "error": "Answer too large"}), binary)

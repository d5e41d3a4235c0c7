"""Pushing queue messages to websocket connections (zaqar-v2-api.md §10.4).

A `subscription_create` without a subscriber subscribes the connection: the
subscription's subscriber is the connection's address in API Gateway's
management API, `wss://<domain>/<stage>/@connections/<id>`, with
`?format=msgpack` when the subscribing frame was binary. Users cannot make
such a subscription themselves (`ws`/`wss` are not subscriber types), so the
scheme alone tells notification delivery to call `deliver` here.
"""
from urllib.parse import quote, unquote, urlsplit

from chalicelib.websocket import connections, frames

SCHEME = "wss"
PATH_PREFIX = "/@connections/"
MSGPACK_QUERY = "format=msgpack"


def subscriber(domain_name, stage, connection_id, binary):
    address = f"{SCHEME}://{domain_name}/{stage}{PATH_PREFIX}{quote(connection_id, safe='')}"
    return f"{address}?{MSGPACK_QUERY}" if binary else address


def is_connection(subscriber_uri):
    return urlsplit(subscriber_uri).scheme == SCHEME


def parse(subscriber_uri):
    """(domain name, stage, connection id, binary) of a connection's address."""
    parts = urlsplit(subscriber_uri)
    stage, _, connection_id = parts.path.partition(PATH_PREFIX)
    return (parts.netloc, stage.lstrip("/"), unquote(connection_id),
            parts.query == MSGPACK_QUERY)


def deliver(websocket_api, subscriber_uri, notification):
    """Push one notification: the bare payload, no envelope, encoded as the
    subscribing frame was. False if the connection is gone; it has then been
    forgotten, with the subscriptions it made."""
    domain_name, stage, connection_id, binary = parse(subscriber_uri)
    # A stream-triggered Lambda has seen no websocket event to learn the
    # management API's address from (configure keeps the first one).
    websocket_api.configure(domain_name, stage)
    return connections.send(websocket_api, connection_id,
                            frames.encode(notification, binary))

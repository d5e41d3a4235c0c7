"""Pushing queue messages to websocket connections (zaqar-v2-api.md §10.4).

A `subscription_create` without a subscriber subscribes the connection: the
subscription's subscriber is the connection's address in API Gateway's
management API, `wss://<domain>/<stage>/@connections/<id>`, with
`?format=msgpack` when the subscribing frame was binary. Users cannot make
such a subscription themselves (`wss` is no subscriber type), so the scheme
alone tells notification delivery to hand the payload to `deliver`.
"""
from urllib.parse import quote, unquote, urlsplit

from chalice.app import WebsocketDisconnectedError

from chalicelib.actions.messages import load_queue
from chalicelib.notify import delivery
from chalicelib.notify.transports import DELIVERED, Outcome
from chalicelib.storage.base import TOPIC_SPACE
from chalicelib.validation import check_queue_name, validate
from chalicelib.websocket import frames

SCHEME = "wss"
PATH_PREFIX = "/@connections/"
MSGPACK_QUERY = "format=msgpack"
# The app's WebsocketAPI and how to make its AWS session, set by app.py
# (`use`): a stream-triggered Lambda reaches connections only through it.
_websocket_api = None
_new_session = None


def use(websocket_api, new_session):
    """Post through `websocket_api`, with a session from `new_session()`
    made on first use (most of this app's Lambdas never post), and take
    the notifications of connections that subscribed themselves."""
    global _websocket_api, _new_session
    _websocket_api, _new_session = websocket_api, new_session
    delivery.add_transport(SCHEME, deliver)


def _connections():
    # The stores on first use: app.py registers this module at import, for
    # every function, and their pynamodb costs ~150 ms of a cold start.
    from chalicelib.storage import connections
    return connections


def _api():
    if _websocket_api.session is None:
        _websocket_api.session = _new_session()
    return _websocket_api


def send(connection_id, data):
    """Post to a connection; False if it is gone (API Gateway's 410), in
    which case it is forgotten."""
    try:
        _api().send(connection_id, data)
    except WebsocketDisconnectedError:
        _connections().forget(connection_id)
        return False
    return True


def close(connection_id):
    """Close a connection, and forget it now ($disconnect is best effort)."""
    try:
        _api().close(connection_id)
    except WebsocketDisconnectedError:
        pass
    _connections().forget(connection_id)


def subscriber(domain_name, stage, connection_id, binary):
    address = f"{SCHEME}://{domain_name}/{stage}{PATH_PREFIX}{quote(connection_id, safe='')}"
    return f"{address}?{MSGPACK_QUERY}" if binary else address


def parse(subscriber_uri):
    """(domain name, stage, connection id, binary) of a connection's address."""
    parts = urlsplit(subscriber_uri)
    stage, _, connection_id = parts.path.partition(PATH_PREFIX)
    return (parts.netloc, stage.lstrip("/"), unquote(connection_id),
            parts.query == MSGPACK_QUERY)


def subscribe(ctx, queue_name, connection_subscriber, document):
    """Subscribe a connection to the queue: (subscription id, created). As
    the subscriptions action does, less the subscriber checks (this address
    is ours) and the confirmation request (there is nobody to confirm it:
    Zaqar never confirms these either)."""
    check_queue_name(queue_name)
    validate("subscription_fields", document, ctx.settings)
    load_queue(ctx, queue_name, create=True)
    from chalicelib.storage import subscriptions as subscription_store  # see _connections
    subscription, created = subscription_store.create(
        ctx.project, queue_name, connection_subscriber,
        document.get("ttl", ctx.settings.default_subscription_ttl),
        document.get("options") or {})
    if created:
        _, _, connection_id, _ = parse(connection_subscriber)
        _connections().remember_subscription(connection_id, queue_name, subscription.id,
                                             topic=ctx.project.endswith(TOPIC_SPACE))
    return subscription.id, created


def deliver(subscriber_uri, notification):
    """Push one notification (notification delivery's Outcome): the bare
    payload, no envelope, encoded as the subscribing frame was. A connection
    that is gone is forgotten, with the subscriptions it made."""
    domain_name, stage, connection_id, binary = parse(subscriber_uri)
    # A stream-triggered Lambda has seen no websocket event to learn the
    # management API's address from (configure keeps the first one).
    _websocket_api.configure(domain_name, stage)
    if send(connection_id, frames.encode(notification, binary)):
        return DELIVERED
    return Outcome(False, reason="the websocket connection is gone")

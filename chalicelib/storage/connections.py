"""Websocket connections, kept in DynamoDB so that every Lambda sees them.

A connection is bound to the first project a frame names: Zaqar 23.0.1
refuses frames for any other project on that connection. It also lists the
subscriptions it made, which go when it goes: on disconnect, or when a push
finds it gone (API Gateway sends no $disconnect for some lost connections).
"""
from __future__ import annotations

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib import clock
from chalicelib.storage import subscriptions as subscription_store
from chalicelib.storage.models import ConnectionRecord as Connection
from chalicelib.storage.retry import condition_failed, retrying

# API Gateway closes every websocket connection after 2 hours; the record
# lives a little longer, and TTL reclaims the ones no disconnect removed.
LIFETIME_S = 2 * 3600 + 300
# Bound projects never change, so a warm Lambda remembers them and checks a
# frame without reading the table. Dropped wholesale when full.
_bound = {}
_BOUND_MAX = 10_000


def _expiry(now_ms):
    return now_ms // 1000 + LIFETIME_S


def opened(connection_id: str) -> None:
    now = clock.now_ms()
    retrying(Connection(connection_id, created=now, expires_at=_expiry(now)).save)


def bind(connection_id: str, project: str) -> bool:
    """True if the connection may act for `project`: it is the project its
    first frame named (and now is, if this is the first)."""
    if _bound.get(connection_id) == project:
        return True
    now = clock.now_ms()
    try:
        # Also recreates a record that is missing (its $connect write failed).
        retrying(Connection(connection_id).update, actions=[
            Connection.project.set(project),
            Connection.created.set(Connection.created | now),
            Connection.expires_at.set(Connection.expires_at | _expiry(now)),
        ], condition=Connection.project.does_not_exist() | (Connection.project == project))
    except UpdateError as exc:
        if condition_failed(exc):
            return False
        raise
    if len(_bound) >= _BOUND_MAX:
        _bound.clear()
    _bound[connection_id] = project
    return True


def remember_subscription(connection_id: str, queue_name: str,
                          subscription_id: str) -> None:
    retrying(Connection(connection_id).update, actions=[
        Connection.subscriptions.add({f"{queue_name}/{subscription_id}"}),
        # Should it have been forgotten meanwhile, TTL still reclaims it.
        Connection.expires_at.set(Connection.expires_at | _expiry(clock.now_ms())),
    ])


def forget(connection_id: str) -> None:
    """Remove the connection, and the subscriptions it made."""
    _bound.pop(connection_id, None)
    try:
        record = retrying(Connection.get, connection_id, consistent_read=True)
    except DoesNotExist:
        return
    for entry in record.subscriptions or ():
        queue_name, subscription_id = entry.split("/", 1)
        subscription_store.delete(record.project, queue_name, subscription_id)
    retrying(record.delete)

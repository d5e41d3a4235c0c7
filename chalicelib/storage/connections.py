"""Websocket connections, kept in DynamoDB so that every Lambda sees them.

A connection is bound to one project: the first a frame names (without
authentication), or its token's (Keystone: the `authenticate` action).
Zaqar 23.0.1 refuses frames for any other project on that connection. It
also lists the
subscriptions it made, which go when it goes: on disconnect, or when a push
finds it gone (API Gateway sends no $disconnect for some lost connections).
"""
from __future__ import annotations

from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib import clock
from chalicelib.storage import subscriptions as subscription_store
from chalicelib.storage.base import TOPIC_SPACE
from chalicelib.storage.models import ConnectionRecord as Connection
from chalicelib.storage.retry import condition_failed, retrying

# API Gateway closes every websocket connection after 2 hours; the record
# lives a little longer, and TTL reclaims the ones no disconnect removed.
LIFETIME_S = 2 * 3600 + 300
# Bound projects never change, so a warm Lambda remembers them and checks a
# frame without reading the table. Dropped wholesale when full.
_bound = {}
_BOUND_MAX = 10_000
# Who authenticated on a connection, as this warm Lambda last read it. Read
# again after a while: the connection may re-authenticate through another.
_callers: dict[str, tuple[Caller, int]] = {}
_CALLER_REREAD_MS = 60_000
# Marks a remembered subscription as a topic's.
TOPIC_MARK = "~"


@dataclass(frozen=True)
class Caller:
    """Who authenticated on a connection, until when."""
    project: str
    roles: frozenset[str]
    user_id: str | None
    expires_ms: int


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


def authenticate(connection_id: str, caller: Caller) -> bool:
    """Record who authenticated on the connection; False if it is bound to
    another project (its subscriptions belong to that one)."""
    now = clock.now_ms()
    try:
        retrying(Connection(connection_id).update, actions=[
            Connection.project.set(caller.project),
            Connection.roles.set(set(caller.roles)) if caller.roles else Connection.roles.remove(),
            Connection.user_id.set(caller.user_id) if caller.user_id
            else Connection.user_id.remove(),
            Connection.token_expires.set(caller.expires_ms),
            Connection.created.set(Connection.created | now),
            Connection.expires_at.set(Connection.expires_at | _expiry(now)),
        ], condition=Connection.project.does_not_exist()
            | (Connection.project == caller.project))
    except UpdateError as exc:
        if condition_failed(exc):
            return False
        raise
    _remember_caller(connection_id, caller, now)
    return True


def _remember_caller(connection_id: str, caller: Caller, now: int) -> None:
    if len(_callers) >= _BOUND_MAX:
        _callers.clear()
    _callers[connection_id] = (caller, now)


def caller(connection_id: str) -> Caller | None:
    """Who authenticated on the connection; None if no one has."""
    now = clock.now_ms()
    known = _callers.get(connection_id)
    if known is not None and now - known[1] < _CALLER_REREAD_MS:
        return known[0]
    try:
        record = retrying(Connection.get, connection_id, consistent_read=True)
    except DoesNotExist:
        return None
    if record.token_expires is None or record.project is None:
        return None
    found = Caller(project=record.project, roles=frozenset(record.roles or ()),
                   user_id=record.user_id, expires_ms=int(record.token_expires))
    _remember_caller(connection_id, found, now)
    return found


def remember_subscription(connection_id: str, queue_name: str,
                          subscription_id: str, topic: bool = False) -> None:
    name = TOPIC_MARK + queue_name if topic else queue_name
    retrying(Connection(connection_id).update, actions=[
        Connection.subscriptions.add({f"{name}/{subscription_id}"}),
        # Should it have been forgotten meanwhile, TTL still reclaims it.
        Connection.expires_at.set(Connection.expires_at | _expiry(clock.now_ms())),
    ])


def forget(connection_id: str) -> None:
    """Remove the connection, and the subscriptions it made."""
    _bound.pop(connection_id, None)
    _callers.pop(connection_id, None)
    try:
        record = retrying(Connection.get, connection_id, consistent_read=True)
    except DoesNotExist:
        return
    for entry in record.subscriptions or ():
        queue_name, subscription_id = entry.split("/", 1)
        project = record.project
        if queue_name.startswith(TOPIC_MARK):  # a topic's (queue names have no "~")
            project, queue_name = project + TOPIC_SPACE, queue_name[len(TOPIC_MARK):]
        subscription_store.delete(project, queue_name, subscription_id)
    retrying(record.delete)

"""Queues: one item per queue in the queues table, keyed (project, name).

Message requests need a few facts of their queue (metadata, floor). Rather
than reading the queue's item on each, a warm function keeps them as last
read, with the queue's version they were written at. Every change to a queue
item first raises the version on the queue's state item (messages table),
which claims and lists read and posts write anyway: there the version is
checked, and a request on facts that changed since is refused (StaleQueue)
before it did anything, to be made again on facts read afresh. The item is
written with its version, and only over a lower one: of two changes, the one
that raised the version last writes last, so facts read at the state's
version are the queue's.
"""
from __future__ import annotations

import dataclasses
import json
import random
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from pynamodb.exceptions import DeleteError, DoesNotExist, UpdateError

from chalicelib import clock
from chalicelib.storage import places
from chalicelib.storage.base import QueueFacts
from chalicelib.storage.models import STATE_KEY, QueueRecord, QueueState, queue_key
from chalicelib.storage.retry import condition_failed, retrying, saved_if

if TYPE_CHECKING:
    from collections.abc import Callable

    from chalicelib.storage.base import Pool


# Queues whose facts a function keeps: the least recently used go first.
CACHED_QUEUES = 1000
_cache: OrderedDict[tuple[str, str, str], QueueFacts] = OrderedDict()
_cache_lock = threading.Lock()


def _new_version(project, name):
    """Raise the queue's version, before its item changes: facts read
    earlier, at a lower version, are then refused where it is checked. By a
    random step, so that versions do not repeat in other tables (a test's
    fresh ones); a retried ADD may raise it twice, which costs a fresh read."""
    state = QueueState(queue_key(project, name), STATE_KEY)
    retrying(state.update, actions=[QueueState.version.add(random.randint(1, 2 ** 32))])
    return int(state.version)


def _over_older(version):
    """The condition that the queue item was last written at a lower
    version than `version`, or never."""
    return QueueRecord.version.does_not_exist() | (QueueRecord.version < version)


def facts(project: str, name: str, fresh: bool = False) -> QueueFacts | None:
    """The queue's facts as last read here, or read now (strongly consistent,
    and with no version left to check, if `fresh`); None if not found."""
    key = (QueueRecord.Meta.table_name, project, name)
    with _cache_lock:
        known = None if fresh else _cache.get(key)
        if known is not None:
            _cache.move_to_end(key)
            return known
    try:
        record = retrying(QueueRecord.get, project, name, consistent_read=fresh)
    except DoesNotExist:
        with _cache_lock:
            _cache.pop(key, None)
        return None
    found = QueueFacts(json.loads(record.metadata), int(record.floor or 0),
                       int(record.version or 0), record.location)
    with _cache_lock:
        _cache[key] = found
        _cache.move_to_end(key)
        if len(_cache) > CACHED_QUEUES:
            _cache.popitem(last=False)
    return dataclasses.replace(found, version=None) if fresh else found


def _next_floor(project, name):
    """Where message positions of a queue created now begin: above anything a
    deleted queue of the same name left behind (see storage.messages)."""
    try:
        state = retrying(QueueState.get, queue_key(project, name), STATE_KEY,
                         consistent_read=True)
    except DoesNotExist:
        return 0
    # No position handed out yet: none to hide, and stats count from the
    # first post (stats.py).
    return 0 if state.counter is None else int(state.counter) + 1


def create(project: str, name: str, metadata: dict | None,
           pool: Pool | None = None) -> bool:
    """Create the queue, its messages on `pool` (None: the stage's table);
    False (and nothing changed) if it already exists."""
    # Its state (positions, version) is kept where its messages will be.
    with places.at(pool.uri if pool else None):
        floor = _next_floor(project, name)
        version = _new_version(project, name)
    record = QueueRecord(project, name, metadata=json.dumps(metadata or {}),
                         created=clock.now_ms(), floor=floor, version=version,
                         pool=pool.name if pool else None,
                         location=pool.uri if pool else None)
    return saved_if(record, QueueRecord.name.does_not_exist())


def get_metadata(project: str, name: str) -> dict | None:
    """The stored metadata, or None for a missing queue."""
    return get_with_floor(project, name)[0]


def get_with_floor(project: str, name: str) -> tuple[dict, int] | tuple[None, None]:
    """(metadata, floor) of the queue, or (None, None) if it does not exist."""
    try:
        record = retrying(QueueRecord.get, project, name)
    except DoesNotExist:
        return None, None
    return json.loads(record.metadata), int(record.floor or 0)


def update_metadata(project: str, name: str,
                    change: Callable[[dict], dict]) -> dict | None:
    """Apply `change(metadata) -> new metadata` to an existing queue.

    Optimistic concurrency: the write is conditional on the metadata read, and
    a concurrent change makes us read and apply again, so no update is lost.
    Returns the new metadata, or None if the queue does not exist.
    """
    while True:
        try:
            record = retrying(QueueRecord.get, project, name, consistent_read=True)
        except DoesNotExist:
            return None
        updated = change(json.loads(record.metadata))
        version = _new_version(project, name)
        try:
            retrying(record.update,
                     actions=[QueueRecord.metadata.set(json.dumps(updated)),
                              QueueRecord.version.set(version)],
                     condition=(QueueRecord.metadata == record.metadata)
                     & _over_older(version))
        except UpdateError as exc:
            if condition_failed(exc):
                continue
            raise
        return updated


def delete(project: str, name: str) -> None:
    while True:  # again if a change that raised the version later wrote first
        version = _new_version(project, name)
        try:
            retrying(QueueRecord(project, name).delete, condition=_over_older(version))
        except DeleteError as exc:
            if condition_failed(exc):
                continue
            raise
        return


def list_page(project: str, marker: str | None = None, limit: int = 10,
              name_filter: str | None = None, match: Callable[[dict], bool] | None = None,
              ) -> list[tuple[str, dict]]:
    """Up to `limit` queues after `marker`, by name: [(name, metadata)].

    `name_filter` keeps names containing it, `match(metadata)` keeps the
    metadata it accepts. Both are applied here: DynamoDB filter expressions
    cannot name key attributes, and metadata is stored as text.
    """
    condition = QueueRecord.name > marker if marker else None

    def read_page():
        found = []
        for record in QueueRecord.query(project, range_key_condition=condition,
                                        page_size=100):
            if name_filter and name_filter not in record.name:
                continue
            metadata = json.loads(record.metadata)
            if match is None or match(metadata):
                found.append((record.name, metadata))
                if len(found) >= limit:
                    break
        return found

    # The query runs while iterating, so the retry must cover the iteration.
    return retrying(read_page)


def count(project: str) -> int:
    return retrying(QueueRecord.count, project)


def raise_floor(project: str, name: str) -> bool:
    """Move the queue's floor above every position handed out so far: all its
    current messages drop out of sight at once. False if the queue is missing."""
    while True:  # again if a change that raised the version later wrote first
        floor = _next_floor(project, name)
        version = _new_version(project, name)
        try:
            retrying(QueueRecord(project, name).update,
                     actions=[QueueRecord.floor.set(floor), QueueRecord.version.set(version)],
                     condition=QueueRecord.name.exists() & _over_older(version)
                     & (QueueRecord.floor.does_not_exist() | (QueueRecord.floor < floor)))
        except UpdateError as exc:
            if not condition_failed(exc):
                raise
            try:
                record = retrying(QueueRecord.get, project, name, consistent_read=True)
            except DoesNotExist:
                return False
            if int(record.version or 0) < version:
                return False  # the floor was as high already
            continue
        return True

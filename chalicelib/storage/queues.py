"""Queues: one item per queue in the queues table, keyed (project, name)."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from chalicelib import clock
from chalicelib.storage.models import STATE_KEY, QueueRecord, QueueState, queue_key
from chalicelib.storage.retry import condition_failed, retrying

if TYPE_CHECKING:
    from collections.abc import Callable


def _next_floor(project, name):
    """Where message positions of a queue created now begin: above anything a
    deleted queue of the same name left behind (see storage.messages)."""
    try:
        state = retrying(QueueState.get, queue_key(project, name), STATE_KEY,
                         consistent_read=True)
    except DoesNotExist:
        return 0
    return int(state.counter or 0) + 1


def create(project: str, name: str, metadata: dict | None) -> bool:
    """Create the queue; False (and nothing changed) if it already exists."""
    record = QueueRecord(project, name, metadata=json.dumps(metadata or {}),
                         created=clock.now_ms(), floor=_next_floor(project, name))
    try:
        retrying(record.save, condition=QueueRecord.name.does_not_exist())
    except PutError as exc:
        if condition_failed(exc):
            return False
        raise
    return True


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
        try:
            retrying(record.update,
                     actions=[QueueRecord.metadata.set(json.dumps(updated))],
                     condition=QueueRecord.metadata == record.metadata)
        except UpdateError as exc:
            if condition_failed(exc):
                continue
            raise
        return updated


def delete(project: str, name: str) -> None:
    retrying(QueueRecord(project, name).delete)


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
    floor = _next_floor(project, name)
    try:
        retrying(QueueRecord(project, name).update,
                 actions=[QueueRecord.floor.set(floor)],
                 condition=QueueRecord.name.exists()
                 & (QueueRecord.floor.does_not_exist() | (QueueRecord.floor < floor)))
    except UpdateError as exc:
        if condition_failed(exc):
            return False
        raise
    return True

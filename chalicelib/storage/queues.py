"""Queues: one item per queue in the queues table, keyed (project, name)."""
import json
import time

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from chalicelib.storage.models import QueueRecord
from chalicelib.storage.retry import condition_failed, retrying


def now_ms():
    return int(time.time() * 1000)


def create(project, name, metadata):
    """Create the queue; False (and nothing changed) if it already exists."""
    record = QueueRecord(project, name, metadata=json.dumps(metadata or {}),
                         created=now_ms())
    try:
        retrying(record.save, condition=QueueRecord.name.does_not_exist())
    except PutError as exc:
        if condition_failed(exc):
            return False
        raise
    return True


def ensure(project, name):
    """Create the queue with empty metadata unless it exists (lazy creation)."""
    create(project, name, {})


def get_metadata(project, name):
    """The stored metadata, or None for a missing queue."""
    try:
        record = retrying(QueueRecord.get, project, name)
    except DoesNotExist:
        return None
    return json.loads(record.metadata)


def update_metadata(project, name, change):
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


def delete(project, name):
    retrying(QueueRecord(project, name).delete)


def list_page(project, marker=None, limit=10, name_filter=None, match=None):
    """Up to `limit` queues after `marker`, by name: [(name, metadata)].

    `name_filter` keeps names containing it; `match(metadata)` is applied in
    addition (metadata equality filters are not expressible in DynamoDB since
    metadata is stored as text).
    """
    condition = QueueRecord.name > marker if marker else None
    filter_condition = QueueRecord.name.contains(name_filter) if name_filter else None
    found = []
    results = retrying(QueueRecord.query, project, range_key_condition=condition,
                       filter_condition=filter_condition, page_size=100)
    for record in results:
        metadata = json.loads(record.metadata)
        if match is None or match(metadata):
            found.append((record.name, metadata))
            if len(found) >= limit:
                break
    return found


def count(project):
    return retrying(QueueRecord.count, project)

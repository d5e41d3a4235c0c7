"""Pools: places for queues' messages (storage/places.py), registered by
administrators, one item each in the queues table under POOLS_KEY.

A queue's pool is chosen once, when it is created with a flavor, and
recorded on its queue item with the pool's URI (storage/queues.py): message
requests find it among the queue's facts, so pools cost the hot path
nothing. A pool whose URI changes keeps serving the queues placed before at
the URI they recorded.
"""
from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING

from pynamodb.exceptions import DeleteError, DoesNotExist, UpdateError

from chalicelib.storage import places
from chalicelib.storage.base import Pool
from chalicelib.storage.models import POOLS_KEY, MessageRecord, PoolRecord
from chalicelib.storage.retry import condition_failed, retrying, saved_if

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

# How long the table-to-pool map of stream handlers is kept (few pools, rare changes).
STREAM_MAP_SECONDS = 60
STREAM_TABLE = re.compile(r"^arn:[^:]+:dynamodb:(?P<region>[^:]+):[^:]*:table/(?P<table>[^/]+)/")
_stream_map: tuple[float, dict[str, dict[str, str]]] = (0.0, {})


def _pool_of(record: PoolRecord) -> Pool:
    return Pool(name=record.name, uri=record.uri, weight=int(record.weight),
                flavor=record.flavor, options=json.loads(record.options))


def create(pool: Pool) -> bool:
    record = PoolRecord(POOLS_KEY, pool.name, uri=pool.uri, weight=pool.weight,
                        flavor=pool.flavor, options=json.dumps(pool.options))
    return saved_if(record, PoolRecord.name.does_not_exist())


def get(name: str) -> Pool | None:
    try:
        return _pool_of(retrying(PoolRecord.get, POOLS_KEY, name, consistent_read=True))
    except DoesNotExist:
        return None


def every() -> list[Pool]:
    """All the pools (they are few), for the sweeper and the stream map."""
    return retrying(lambda: [_pool_of(record) for record in PoolRecord.query(
        POOLS_KEY, consistent_read=True)])


def list_page(marker: str | None = None, limit: int = 10) -> list[Pool]:
    found = retrying(lambda: list(PoolRecord.query(
        POOLS_KEY, PoolRecord.name > marker if marker else None, limit=limit,
        consistent_read=True)))
    return [_pool_of(record) for record in found]


def _updated(name, actions, condition=None):
    """Update an existing pool (under `condition` too); False if refused."""
    exists = PoolRecord.name.exists()
    condition = exists if condition is None else exists & condition
    try:
        retrying(PoolRecord(POOLS_KEY, name).update, actions=actions, condition=condition)
    except UpdateError as exc:
        if condition_failed(exc):
            return False
        raise
    return True


def update(name: str, uri: str | None = None, weight: int | None = None,
           options: dict | None = None) -> Pool | None:
    actions = [attribute.set(value) for attribute, value in (
        (PoolRecord.uri, uri), (PoolRecord.weight, weight),
        (PoolRecord.options, None if options is None else json.dumps(options)))
        if value is not None]
    if actions and not _updated(name, actions):
        return None
    return get(name)


def tag(name: str, flavor: str | None, only_if: str | None = None) -> bool:
    action = PoolRecord.flavor.remove() if flavor is None else PoolRecord.flavor.set(flavor)
    return _updated(name, [action], None if only_if is None else PoolRecord.flavor == only_if)


def in_flavor(flavor: str) -> list[Pool]:
    # Pools are few: all of them in one query, filtered here.
    return [pool for pool in every() if pool.flavor == flavor]


def delete(name: str, flavor: str | None) -> bool:
    unchanged = (PoolRecord.flavor.does_not_exist() if flavor is None
                 else PoolRecord.flavor == flavor)
    try:
        retrying(PoolRecord(POOLS_KEY, name).delete, condition=unchanged)
    except DeleteError as exc:
        if condition_failed(exc):
            return False
        raise
    return True


def at(uri: str | None) -> AbstractContextManager[None]:
    return places.at(uri)


def uri_problem(uri: str) -> str | None:
    try:
        places.parse(uri)
    except places.InvalidLocation as exc:
        return str(exc)
    return None


def reachable(uri: str) -> bool:
    try:
        with places.at(uri):
            # One attempt: an endpoint that does not answer gets its 400 now.
            MessageRecord.describe_table()
    except Exception:  # any failure to reach it is the same answer to the caller
        return False
    return True


def of_stream(stream_arn: str) -> str | None:
    global _stream_map
    where = STREAM_TABLE.match(stream_arn or "")
    if where is None or where["table"] == MessageRecord.Meta.stage_table_name:
        return None
    kept_since, by_table = _stream_map
    age = time.monotonic() - kept_since
    # Read again when old, or (a new pool's table) when it names no such table.
    if age > STREAM_MAP_SECONDS or (where["table"] not in by_table and age > 1):
        by_table = {}
        for pool in every():
            place = places.parse(pool.uri)
            by_table.setdefault(place.table("messages_table"), {})[place.region] = pool.uri
        _stream_map = (time.monotonic(), by_table)
    in_regions = by_table.get(where["table"], {})
    # DynamoDB Local names every region "ddblocal": a table's name then tells.
    if where["region"] not in in_regions and len(in_regions) == 1:
        return next(iter(in_regions.values()))
    return in_regions.get(where["region"])

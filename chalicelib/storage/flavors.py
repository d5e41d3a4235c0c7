"""Flavors: named groups of pools, one item each in the queues table under
FLAVORS_KEY. A flavor's pools are the pools tagged with its name
(storage/pools.py), so a pool is in one flavor at most."""
from __future__ import annotations

import json

from pynamodb.exceptions import DoesNotExist

from chalicelib.storage.base import Flavor
from chalicelib.storage.models import FLAVORS_KEY, FlavorRecord
from chalicelib.storage.retry import retrying


def _flavor_of(record: FlavorRecord) -> Flavor:
    return Flavor(name=record.name, capabilities=json.loads(record.capabilities))


def save(flavor: Flavor) -> None:
    retrying(FlavorRecord(FLAVORS_KEY, flavor.name,
                          capabilities=json.dumps(flavor.capabilities)).save)


def get(name: str) -> Flavor | None:
    try:
        return _flavor_of(retrying(FlavorRecord.get, FLAVORS_KEY, name, consistent_read=True))
    except DoesNotExist:
        return None


def list_page(marker: str | None = None, limit: int = 10) -> list[Flavor]:
    found = retrying(lambda: list(FlavorRecord.query(
        FLAVORS_KEY, FlavorRecord.name > marker if marker else None, limit=limit,
        consistent_read=True)))
    return [_flavor_of(record) for record in found]


def delete(name: str) -> None:
    retrying(FlavorRecord(FLAVORS_KEY, name).delete)

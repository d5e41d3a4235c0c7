"""API keys: one item per key, by its id, holding only the key's keyed hash
(auth/apikey.py makes keys and their digests). A small table, read by id on
every validation that misses the authorizer's cache; listed by project only
by administrators, with a scan.
"""
from __future__ import annotations

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib.storage.base import ApiKey
from chalicelib.storage.models import KeyRecord
from chalicelib.storage.retry import condition_failed, retrying, saved_if

KEPT_AFTER_EXPIRY_S = 30 * 86400


def _key_of(record: KeyRecord) -> ApiKey:
    return ApiKey(id=record.key_id, digest=record.digest, project=record.project,
                  roles=frozenset(record.roles or ()), name=record.name,
                  created=int(record.created),
                  expires=None if record.expires is None else int(record.expires),
                  revoked=bool(record.revoked),
                  last_used=None if record.last_used is None else int(record.last_used))


def create(key: ApiKey) -> bool:
    record = KeyRecord(key.id, digest=key.digest, project=key.project,
                       roles=set(key.roles) or None, name=key.name, created=key.created,
                       expires=key.expires, revoked=key.revoked, last_used=key.last_used,
                       expires_at=None if key.expires is None
                       else key.expires // 1000 + KEPT_AFTER_EXPIRY_S)
    return saved_if(record, KeyRecord.key_id.does_not_exist())


def get(key_id: str) -> ApiKey | None:
    try:
        return _key_of(retrying(KeyRecord.get, key_id))
    except DoesNotExist:
        return None


def list_project(project: str) -> list[ApiKey]:
    found = retrying(lambda: [_key_of(record)
                              for record in KeyRecord.by_project.query(project)])
    return sorted(found, key=lambda key: (key.created, key.id))


def revoke(key_id: str) -> bool:
    try:
        retrying(KeyRecord(key_id).update, actions=[KeyRecord.revoked.set(True)],
                 condition=KeyRecord.key_id.exists())
    except UpdateError as exc:
        if condition_failed(exc):
            return False
        raise
    return True


def record_use(key_id: str, now: int, every_ms: int) -> None:
    # Conditional: of the functions that validate the key within a minute,
    # only the first writes.
    try:
        retrying(KeyRecord(key_id).update, actions=[KeyRecord.last_used.set(now)],
                 condition=KeyRecord.key_id.exists() & (
                     KeyRecord.last_used.does_not_exist()
                     | (KeyRecord.last_used <= now - every_ms)))
    except UpdateError as exc:
        if not condition_failed(exc):
            raise

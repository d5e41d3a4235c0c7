"""The API key store (storage/keys.py) on moto and DynamoDB Local: a key
stored once under its id, read back as stored, listed by project, revoked,
and its last use written only when a minute old."""
import uuid

from chalicelib.storage.base import ApiKey

MINUTE = 60_000


def stored_key(project, **changes):
    fields = {"id": uuid.uuid4().hex[:16], "digest": "d" * 64, "project": project,
              "roles": frozenset({"member"}), "name": "ci", "created": 1_000}
    return ApiKey(**{**fields, **changes})


def test_a_key_is_stored_once_and_read_back_as_stored(store):
    key = stored_key(f"p-{uuid.uuid4().hex}", expires=90_000, roles=frozenset())
    assert store.keys.create(key) is True
    assert store.keys.create(stored_key(key.project, id=key.id)) is False
    assert store.keys.get(key.id) == key
    assert store.keys.get("0" * 16) is None


def test_a_projects_keys_are_listed_oldest_first_revoked_ones_too(store):
    project = f"p-{uuid.uuid4().hex}"
    first, second = stored_key(project, created=1), stored_key(project, created=2)
    for key in (second, first, stored_key(f"other-{uuid.uuid4().hex}")):
        store.keys.create(key)
    assert store.keys.revoke(first.id) is True
    assert [(key.id, key.revoked) for key in store.keys.list_project(project)] == [
        (first.id, True), (second.id, False)]
    assert store.keys.revoke("f" * 16) is False
    assert store.keys.get("f" * 16) is None  # revoking nothing made nothing


def test_last_use_is_written_only_when_a_minute_old(store):
    key = stored_key(f"p-{uuid.uuid4().hex}")
    store.keys.create(key)
    store.keys.record_use(key.id, 10 * MINUTE, MINUTE)
    store.keys.record_use(key.id, 10 * MINUTE + 59_000, MINUTE)
    assert store.keys.get(key.id).last_used == 10 * MINUTE
    store.keys.record_use(key.id, 11 * MINUTE, MINUTE)
    assert store.keys.get(key.id).last_used == 11 * MINUTE
    store.keys.record_use("e" * 16, 11 * MINUTE, MINUTE)  # no such key: nothing made
    assert store.keys.get("e" * 16) is None

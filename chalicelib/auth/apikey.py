"""API keys (mode `apikey`): project-scoped keys an administrator issues
(POST /v2/keys, rest/keys.py; `python -m local.keys`), presented as
X-Auth-Token or `Authorization: Bearer`.

A key is `zq_<id>_<secret>`: the prefix tells it from a Keystone token or a
JWT, the id (16 hex digits) finds its item with one read, the secret (64
hex digits) makes it unguessable. The key is shown once, when issued; the
keys table holds only its HMAC-SHA256 under the stage's `api_key_secret`
(a pepper kept out of the table), so a copy of the table opens nothing.

A warm function believes a validated key for `api_key_cache_seconds` (60 at
most), never past its expiry: a revoked key works that long at most. A
validation that misses that cache reads the key's item (one GetItem), and
writes its last use when that is over a minute old (one conditional
UpdateItem a minute per key, whatever the traffic).
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING

from chalicelib import clock, parameters
from chalicelib.auth.identity import Identity, credential, unauthorized
from chalicelib.storage.base import ApiKey

if TYPE_CHECKING:
    from chalicelib.config import Settings
    from chalicelib.storage.base import KeyStore

PREFIX = "zq_"
_KEY = re.compile(r"zq_([0-9a-f]{16})_[0-9a-f]{64}")
MAX_CACHE_SECONDS = 60  # the documented revocation bound
LAST_USED_EVERY_MS = 60_000
# (keys table, digest) -> (identity, key id, believed until ms)
_believed: dict[tuple[str, str], tuple[Identity, str, int]] = {}
_BELIEVED_MAX = 10_000  # dropped wholesale when full


def key_store(settings: Settings) -> KeyStore:
    """Where the stage keeps its keys (imported on first use: a cold start
    that checks no key never loads the stores' pynamodb)."""
    from chalicelib.storage.dynamodb import driver
    return driver(settings).keys


def is_key(token: str) -> bool:
    return token.startswith(PREFIX)


def _pepper(settings: Settings) -> str:
    return parameters.value(settings.api_key_secret, settings.api_key_secret_parameter,
                            settings)


def _digest(key: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


def issue(settings: Settings, project: str, roles: frozenset[str], name: str,
          ttl: int | None) -> tuple[str, ApiKey]:
    """(the new key, to be shown once; what is stored of it)."""
    pepper, now = _pepper(settings), clock.now_ms()
    store = key_store(settings)
    while True:  # a taken id (1 in 2**64) draws another
        key_id = secrets.token_hex(8)
        key = f"{PREFIX}{key_id}_{secrets.token_hex(32)}"
        stored = ApiKey(id=key_id, digest=_digest(key, pepper), project=project,
                        roles=roles, name=name, created=now,
                        expires=None if ttl is None else now + ttl * 1000)
        if store.create(stored):
            return key, stored


def revoke(settings: Settings, key_id: str) -> bool:
    """Whether there was such a key; this function stops believing it at
    once, others within the cache bound."""
    for cached, (_, believed_id, _) in list(_believed.items()):
        if believed_id == key_id:
            _believed.pop(cached, None)
    return key_store(settings).revoke(key_id)


def authenticate(headers: Mapping[str, str], settings: Settings) -> Identity:
    key = credential(headers) or ""
    match = _KEY.fullmatch(key)
    if match is None:
        raise unauthorized(settings)
    cached = (settings.keys_table, _digest(key, _pepper(settings)))
    now = clock.now_ms()
    known = _believed.get(cached)
    if known is not None and known[2] > now:
        return known[0]
    store = key_store(settings)
    stored = store.get(match[1])
    if (stored is None or not hmac.compare_digest(stored.digest, cached[1])
            or stored.revoked or (stored.expires is not None and stored.expires <= now)):
        raise unauthorized(settings)
    if stored.last_used is None or stored.last_used <= now - LAST_USED_EVERY_MS:
        store.record_use(stored.id, now, LAST_USED_EVERY_MS)
    identity = Identity(project=stored.project, roles=stored.roles,
                        expires_ms=stored.expires)
    until = now + min(settings.api_key_cache_seconds, MAX_CACHE_SECONDS) * 1000
    if len(_believed) >= _BELIEVED_MAX:
        _believed.clear()
    _believed[cached] = (identity, stored.id, min(until, stored.expires or until))
    return identity

"""Keystone tokens: X-Auth-Token validated against Keystone v3, as
keystonemiddleware's auth_token does it, and believed for a bounded time.

A warm function keeps what Keystone said about a token (keyed by its hash,
only successes, as keystonemiddleware does) for `keystone_cache_seconds`,
never past the token's expiry: a hit costs no call to Keystone. A token
Keystone will not let validate itself (trust-scoped) is validated with the
trustee's token (notify/trusts.py), when the stage has a trustee.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from chalicelib import clock, keystone_api
from chalicelib.auth.identity import Identity, unauthorized
from chalicelib.errors import ServiceUnavailable
from chalicelib.notify import trusts

if TYPE_CHECKING:
    from chalicelib.config import Settings

_believed: dict[str, tuple[Identity, int]] = {}  # token hash -> (identity, until ms)
_BELIEVED_MAX = 10_000  # dropped wholesale when full


def identity_of(token: dict) -> Identity:
    """The identity in a token document's `token` object."""
    return Identity(project=(token.get("project") or {}).get("id"),
                    roles=frozenset(role["name"] for role in token.get("roles", ())),
                    user_id=token["user"]["id"], expires_ms=keystone_api.expires_ms(token))


def _validated(token: str, settings: Settings) -> dict:
    try:
        return keystone_api.validate(settings.keystone_url, token, settings.keystone_timeout)
    except keystone_api.Refused as refused:
        if refused.status != 403:
            raise
    # A token its own user may not validate: a trust-scoped one (a trust+
    # subscriber calling back with its delivery's token). The trustee may.
    return keystone_api.validate(settings.keystone_url, token, settings.keystone_timeout,
                                 service_token=trusts.service_token(settings))


def authenticate(headers: Mapping[str, str], settings: Settings) -> Identity:
    token = headers.get("x-auth-token")
    if not token:
        raise unauthorized(settings)
    key = hashlib.sha256(f"{settings.keystone_url}\n{token}".encode()).hexdigest()
    now = clock.now_ms()
    known = _believed.get(key)
    if known is not None and known[1] > now:
        return known[0]
    try:
        identity = identity_of(_validated(token, settings)["token"])
    except keystone_api.Refused:
        raise unauthorized(settings) from None
    except keystone_api.Unavailable:
        raise ServiceUnavailable("The Keystone service is temporarily unavailable.") from None
    except trusts.NotConfigured:
        raise ServiceUnavailable("This token can be validated only with the service's own "
                                 "Keystone user (the trustee), which is not configured.") from None
    except (KeyError, TypeError, ValueError):  # not a token document
        raise ServiceUnavailable("Keystone's answer could not be read.") from None
    if identity.expires_ms <= now:
        raise unauthorized(settings)
    if len(_believed) >= _BELIEVED_MAX:
        _believed.clear()
    _believed[key] = (identity, min(now + settings.keystone_cache_seconds * 1000,
                                    identity.expires_ms))
    return identity

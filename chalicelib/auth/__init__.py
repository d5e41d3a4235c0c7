"""Who is calling: each stage's auth mode turns a request's headers into an
Identity (project, roles, user, expiry), the same way for REST, the
websocket and API Gateway's authorizer.

Modes, one module each with `authenticate(headers, settings) -> Identity`:

* `keystone`: the X-Auth-Token is validated against Keystone (auth/keystone.py);
  project and roles come from the token, never from the request.
* `noauth`: the X-Project-ID and X-Roles headers are believed
  (auth/noauth.py). Only the dev stage may run so, unless `allow_noauth` is
  set on purpose (a private test deployment, say): anyone who can reach such
  a stage can act for any project, as its administrator.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from chalicelib.auth import keystone, noauth, policy
from chalicelib.auth.identity import (  # noqa: F401 (the package's names)
    Identity,
    acting_project,
    context_for,
    expired,
    unauthorized,
)
from chalicelib.errors import ServiceUnavailable

if TYPE_CHECKING:
    from chalicelib.config import Settings


class Misconfigured(Exception):
    """Settings no request can be served with."""


def check_settings(settings: Settings) -> None:
    """Refuse settings that would serve callers unsafely or not at all; the
    runner and packaging call this first, so the mistake shows at once."""
    if settings.auth_strategy not in ("keystone", "noauth"):
        raise Misconfigured(f"AUTH_STRATEGY must be keystone or noauth, "
                            f"not {settings.auth_strategy!r}")
    if (settings.auth_strategy == "noauth" and settings.stage != "dev"
            and not settings.allow_noauth):
        raise Misconfigured(
            f"stage {settings.stage or '(unnamed)'!r} has AUTH_STRATEGY=noauth: anyone "
            "could act for any project. Use keystone, or set ALLOW_NOAUTH=true "
            "if this stage is reachable only by people trusted with every project")
    if settings.auth_strategy == "keystone" and not settings.keystone_url:
        raise Misconfigured("AUTH_STRATEGY=keystone needs KEYSTONE_URL "
                            "(the identity v3 endpoint)")
    for secret in ("keystone_trustee_password", "signed_url_secret_key"):
        if getattr(settings, secret) and getattr(settings, f"{secret}_parameter"):
            raise Misconfigured(f"set {secret.upper()} or {secret.upper()}_PARAMETER, "
                                "not both")
    try:
        policy.rules(settings.policy)
    except ValueError as error:  # BadPolicy, or not JSON
        raise Misconfigured(f"POLICY: {error}") from None


def authenticate(headers: Mapping[str, str], settings: Settings) -> Identity:
    """The caller's identity; Unauthorized (401) for missing or refused
    credentials, ServiceUnavailable (503) when they cannot be checked."""
    try:
        check_settings(settings)
    except Misconfigured as error:
        # Refuse everyone rather than guess: a stage left without a mode
        # must not fall back to trusting its callers.
        raise ServiceUnavailable(f"This service is not configured: {error}.") from None
    mode = keystone if settings.auth_strategy == "keystone" else noauth
    return mode.authenticate(headers, settings)

"""Who is calling: each stage's auth mode turns a request's headers into an
Identity (project, roles, user, expiry), the same way for REST, the
websocket and API Gateway's authorizer.

Modes, one module each with `authenticate(headers, settings) -> Identity`:

* `keystone`: the X-Auth-Token is validated against Keystone (auth/keystone.py);
  project and roles come from the token, never from the request.
* `apikey`: a key an administrator issued for a project (auth/apikey.py).
* `jwt`: an OIDC issuer's signed token (auth/oidc.py).
* `noauth`: the X-Project-ID and X-Roles headers are believed
  (auth/noauth.py). Only the dev stage may run so, unless `allow_noauth` is
  set on purpose (a private test deployment, say): anyone who can reach such
  a stage can act for any project, as its administrator.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from chalicelib import cors
from chalicelib.auth import apikey, keystone, noauth, oidc, policy
from chalicelib.auth.identity import (  # noqa: F401 (the package's names)
    Identity,
    acting_project,
    context_for,
    credential,
    expired,
    unauthorized,
)
from chalicelib.errors import ServiceUnavailable

if TYPE_CHECKING:
    from chalicelib.config import Settings


LOOPBACK = ("127.0.0.1", "localhost", "::1")
MODES = {"keystone": keystone, "apikey": apikey, "jwt": oidc}


class Misconfigured(Exception):
    """Settings no request can be served with."""


def modes(settings: Settings) -> frozenset[str]:
    """The stage's modes, as AUTH_STRATEGY lists them."""
    return frozenset(mode.strip() for mode in settings.auth_strategy.split(","))


def _check_modes(settings: Settings) -> None:
    names = modes(settings)
    if settings.auth_strategy != "noauth" and not names <= set(MODES):
        raise Misconfigured(f"AUTH_STRATEGY must be keystone or noauth, or a comma list of "
                            f"keystone, apikey and jwt, not {settings.auth_strategy!r}")
    if "keystone" in names and not settings.keystone_url:
        raise Misconfigured("AUTH_STRATEGY=keystone needs KEYSTONE_URL "
                            "(the identity v3 endpoint)")
    if "apikey" in names:
        if bool(settings.api_key_secret) == bool(settings.api_key_secret_parameter):
            raise Misconfigured("AUTH_STRATEGY=apikey needs API_KEY_SECRET or "
                                "API_KEY_SECRET_PARAMETER (one, not both)")
        if not 0 <= settings.api_key_cache_seconds <= apikey.MAX_CACHE_SECONDS:
            raise Misconfigured(f"API_KEY_CACHE_SECONDS must be 0 to "
                                f"{apikey.MAX_CACHE_SECONDS}: a revoked key works that long")
    if "jwt" in names:
        if not (settings.jwt_issuer and settings.jwt_audience):
            raise Misconfigured("AUTH_STRATEGY=jwt needs JWT_ISSUER and JWT_AUDIENCE")
        url = urlsplit(oidc.jwks_url(settings))
        if not (url.scheme == "https" or (url.scheme == "http" and url.hostname in LOOPBACK)):
            raise Misconfigured(f"the JWKS URL {oidc.jwks_url(settings)!r} must be https "
                                "(http only on 127.0.0.1)")


def mode_of(token: str) -> str:
    """The mode a credential's form names."""
    if apikey.is_key(token):
        return "apikey"
    return "jwt" if oidc.is_jwt(token) else "keystone"


def check_settings(settings: Settings) -> None:
    """Refuse settings that would serve callers unsafely or not at all; the
    runner and packaging call this first, so the mistake shows at once."""
    _check_modes(settings)
    if (settings.auth_strategy == "noauth" and settings.stage != "dev"
            and not settings.allow_noauth):
        raise Misconfigured(
            f"stage {settings.stage or '(unnamed)'!r} has AUTH_STRATEGY=noauth: anyone "
            "could act for any project. Use keystone, or set ALLOW_NOAUTH=true "
            "if this stage is reachable only by people trusted with every project")
    for secret in ("keystone_trustee_password", "signed_url_secret_key"):
        if getattr(settings, secret) and getattr(settings, f"{secret}_parameter"):
            raise Misconfigured(f"set {secret.upper()} or {secret.upper()}_PARAMETER, "
                                "not both")
    try:
        policy.rules(settings.policy)
    except ValueError as error:  # BadPolicy, or not JSON
        raise Misconfigured(f"POLICY: {error}") from None
    try:
        cors.check_settings(settings)
    except ValueError as error:
        raise Misconfigured(str(error)) from None


def authenticate(headers: Mapping[str, str], settings: Settings) -> Identity:
    """The caller's identity; Unauthorized (401) for missing or refused
    credentials, ServiceUnavailable (503) when they cannot be checked."""
    try:
        check_settings(settings)
    except Misconfigured as error:
        # Refuse everyone rather than guess: a stage left without a mode
        # must not fall back to trusting its callers.
        raise ServiceUnavailable(f"This service is not configured: {error}.") from None
    if settings.auth_strategy == "noauth":
        return noauth.authenticate(headers, settings)
    mode = mode_of(credential(headers) or "")
    if mode not in modes(settings):
        raise unauthorized(settings)
    return MODES[mode].authenticate(headers, settings)

"""OIDC/JWT tokens (mode `jwt`): an identity provider's tokens (Amazon
Cognito, Keycloak, Auth0...) presented as `Authorization: Bearer` or
X-Auth-Token, believed once their RS256 signature checks out against the
issuer's published keys (its JWKS) and their claims against the stage's
settings: `iss`, `aud` (or a Cognito access token's `client_id`), `exp` and
`nbf` give or take `jwt_clock_skew`. The project is the claim
`jwt_project_claim` names, the roles the one `jwt_roles_claim` names.

Only RS256 is accepted, whatever the token's header says: `none`, HS256 (a
public key used as an HMAC secret) and the rest are refused. The signature
is checked here in plain Python (RSASSA-PKCS1-v1_5 with SHA-256, RFC 8017
§8.2.2: one modular exponentiation and a comparison with the one encoding
a valid signature has), rather than with `cryptography`, whose 4.7 MB
architecture-bound wheel would not fit the Lambda package budget.

The JWKS is fetched (stdlib urllib) on first use and kept for
`jwt_jwks_cache_seconds`; a token signed with a key id it does not hold
fetches it again (the issuer rotated its keys), at most once per
REFETCH_MIN_MS, so that tokens with made-up key ids cannot make this
service hammer the issuer.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from chalicelib import clock
from chalicelib.auth.identity import Identity, credential, unauthorized
from chalicelib.errors import ServiceUnavailable

if TYPE_CHECKING:
    from chalicelib.config import Settings

log = logging.getLogger("zaqar.auth")
ALGORITHMS = ("RS256",)
REFETCH_MIN_MS = 30_000
MIN_MODULUS_BITS = 2048
MAX_JWKS_BYTES = 1 << 20
MAX_TIME_S = 1e11  # seconds since the epoch: year 5138
# DER of DigestInfo{sha256, NULL} up to the digest (RFC 8017 §9.2, note 1).
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
_PART = re.compile(r"[A-Za-z0-9_-]+")
# JWKS URL -> ({key id: (modulus, exponent)}, fetched at ms)
_jwks: dict[str, tuple[dict[str | None, tuple[int, int]], int]] = {}
_fetch_lock = threading.Lock()


class _Refused(Exception):
    """Not a token this stage believes."""


def is_jwt(token: str) -> bool:
    """Whether `token` has a JWS's compact form: three base64url parts."""
    parts = token.split(".")
    return len(parts) == 3 and all(_PART.fullmatch(part) for part in parts)


def jwks_url(settings: Settings) -> str:
    return settings.jwt_jwks_url or f"{settings.jwt_issuer.rstrip('/')}/.well-known/jwks.json"


def _decoded(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise _Refused() from None


def _json_object(part: str) -> dict:
    try:
        value = json.loads(_decoded(part))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _Refused() from None
    if not isinstance(value, dict):
        raise _Refused()
    return value


def _integer(value: object) -> int:
    if not isinstance(value, str):
        raise ValueError("not base64url text")
    return int.from_bytes(_decoded(value), "big")


def rs256_valid(signing_input: bytes, signature: bytes, modulus: int, exponent: int) -> bool:
    """Whether `signature` is an RSASSA-PKCS1-v1_5 SHA-256 signature of
    `signing_input` under the public key (modulus, exponent)."""
    size = (modulus.bit_length() + 7) // 8
    if len(signature) != size:
        return False
    number = int.from_bytes(signature, "big")
    if number >= modulus:
        return False
    encoded = pow(number, exponent, modulus).to_bytes(size, "big")
    digest_info = SHA256_DIGEST_INFO + hashlib.sha256(signing_input).digest()
    expected = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    return hmac.compare_digest(encoded, expected)


def _read_jwks(url: str, settings: Settings) -> dict[str | None, tuple[int, int]]:
    """{key id: (modulus, exponent)} of the RSA signing keys at `url`."""
    import urllib.request  # here: a cold start that checks no JWT never needs it
    try:
        with urllib.request.urlopen(url, timeout=settings.jwt_timeout) as answer:
            document = json.loads(answer.read(MAX_JWKS_BYTES))
    except (OSError, ValueError) as error:  # URLError and timeouts are OSErrors
        raise ServiceUnavailable(f"The token issuer's keys could not be read: {error}.") from None
    keys = {}
    for key in document.get("keys", []) if isinstance(document, dict) else []:
        if not (isinstance(key, dict) and key.get("kty") == "RSA"
                and key.get("use", "sig") == "sig" and key.get("alg", "RS256") in ALGORITHMS):
            continue
        try:
            modulus, exponent = _integer(key.get("n")), _integer(key.get("e"))
        except (ValueError, _Refused):
            continue
        if modulus.bit_length() >= MIN_MODULUS_BITS and exponent > 1:
            keys[key.get("kid")] = (modulus, exponent)
    return keys


def _keys(settings: Settings, key_id: str | None) -> list[tuple[int, int]]:
    """The issuer's keys the token may be signed with: the one `key_id`
    names (every key when it names none)."""
    url, now = jwks_url(settings), clock.now_ms()
    with _fetch_lock:
        known, fetched = _jwks.get(url, ({}, None))
        stale = fetched is None or now - fetched >= settings.jwt_jwks_cache_seconds * 1000
        unknown = key_id is not None and key_id not in known
        if stale or (unknown and now - fetched >= REFETCH_MIN_MS):
            try:
                known, fetched = _read_jwks(url, settings), now
            except ServiceUnavailable:
                if not known:
                    raise
                # The issuer is out of reach: its keys as last read serve on,
                # and it is asked again REFETCH_MIN_MS later, not per request.
                log.warning("the JWKS at %s could not be read; its keys as last read "
                            "serve on", url)
                fetched = now - settings.jwt_jwks_cache_seconds * 1000 + REFETCH_MIN_MS
            _jwks[url] = (known, fetched)
    if key_id is None:
        return list(known.values())
    return [known[key_id]] if key_id in known else []


def _audience_ok(claims: dict, settings: Settings) -> bool:
    accepted = {name.strip() for name in settings.jwt_audience.split(",") if name.strip()}
    audience = claims.get("aud")
    if audience is None:  # a Cognito access token names its client instead
        return claims.get("client_id") in accepted
    audience = [audience] if isinstance(audience, str) else audience
    return isinstance(audience, list) and any(
        isinstance(name, str) and name in accepted for name in audience)


def _number(claims: dict, name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # A time within reason: 1e999 reads as infinity.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            -MAX_TIME_S < value < MAX_TIME_S):
        raise _Refused()
    return value


def _roles(value: object) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(role for role in re.split(r"[\s,]+", value) if role)
    if isinstance(value, list):  # no commas: the authorizer's context joins them so
        return frozenset(role for role in value
                         if isinstance(role, str) and role and "," not in role)
    return frozenset()


def _verified_claims(token: str, settings: Settings) -> dict:
    header_part, claims_part, signature_part = token.split(".")
    header = _json_object(header_part)
    if header.get("alg") not in ALGORITHMS or "crit" in header:
        raise _Refused()
    key_id = header.get("kid")
    if key_id is not None and not isinstance(key_id, str):
        raise _Refused()
    signing_input = f"{header_part}.{claims_part}".encode()
    signature = _decoded(signature_part)
    if not any(rs256_valid(signing_input, signature, *key) for key in _keys(settings, key_id)):
        raise _Refused()
    claims = _json_object(claims_part)
    now_s, skew = clock.now_ms() / 1000, settings.jwt_clock_skew
    expires, not_before = _number(claims, "exp"), _number(claims, "nbf")
    if (claims.get("iss") != settings.jwt_issuer or not _audience_ok(claims, settings)
            or expires is None or expires + skew <= now_s
            or (not_before is not None and not_before - skew > now_s)):
        raise _Refused()
    return claims


def authenticate(headers: Mapping[str, str], settings: Settings) -> Identity:
    token = credential(headers) or ""
    if not is_jwt(token):
        raise unauthorized(settings)
    try:
        claims = _verified_claims(token, settings)
    except _Refused:
        raise unauthorized(settings) from None
    project = claims.get(settings.jwt_project_claim)
    # No "/": it would name another project's topics (storage.base.TOPIC_SPACE).
    named = isinstance(project, str) and project and "/" not in project
    return Identity(project=project if named else None,
                    roles=_roles(claims.get(settings.jwt_roles_claim)),
                    expires_ms=int((claims["exp"] + settings.jwt_clock_skew) * 1000))

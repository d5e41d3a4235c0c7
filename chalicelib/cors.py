"""CORS, per stage, answered by the app itself so that it is the same
locally and on AWS.

Chalice's own CORS support cannot serve here: it allows one static origin,
adds no `Vary: Origin`, and its preflight is a MOCK integration on AWS but a
different answer locally. Instead the REST transport adds these headers to
every answer (errors included, so a browser can read a 4xx), and the OPTIONS
view of every path (rest.add_method_fallbacks) answers preflights; OPTIONS is
open to anyone (auth.gateway.is_open), as a preflight carries no credentials.

An Origin is echoed only when the stage allows it; any other gets no CORS
header at all, and the browser keeps the answer from the page. API
Gateway's own answers (its 401, 403, 429, 5xx) cannot echo an Origin: they
carry `gateway_headers`, the first allowed origin, so only that origin can
read them (see infra/package.py).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.config import Settings

ANY = "*"


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def check_settings(settings: Settings) -> None:
    """ValueError for settings a browser would refuse, or that would let any
    site act with a user's credentials."""
    origins = _names(settings.cors_allowed_origins)
    if ANY in origins and settings.cors_allow_credentials:
        raise ValueError("CORS_ALLOWED_ORIGINS=* cannot go with CORS_ALLOW_CREDENTIALS=true: "
                         "name the origins")
    for origin in origins:
        if origin != ANY and ("://" not in origin or origin.endswith("/")):
            raise ValueError(f"CORS_ALLOWED_ORIGINS: {origin!r} is not an origin "
                             "(scheme://host[:port], no path)")


def _allowed_origin(origin: str | None, settings: Settings) -> str | None:
    """What Access-Control-Allow-Origin says to `origin`, or None."""
    if not origin:
        return None
    origins = _names(settings.cors_allowed_origins)
    if origin in origins:
        return origin
    return ANY if ANY in origins and not settings.cors_allow_credentials else None


def _base(allowed: str, settings: Settings) -> dict[str, str]:
    headers = {"Access-Control-Allow-Origin": allowed}
    if allowed != ANY:
        headers["Vary"] = "Origin"  # caches must not serve it to another origin
    if settings.cors_allow_credentials:
        headers["Access-Control-Allow-Credentials"] = "true"
    return headers


def headers(request_headers: Mapping[str, str], settings: Settings) -> dict[str, str]:
    """The CORS headers of an answer to a request (none for an origin not allowed)."""
    allowed = _allowed_origin(request_headers.get("origin"), settings)
    if allowed is None:
        return {}
    found = _base(allowed, settings)
    if settings.cors_expose_headers:
        found["Access-Control-Expose-Headers"] = settings.cors_expose_headers
    return found


def is_preflight(method: str, request_headers: Mapping[str, str]) -> bool:
    return (method == "OPTIONS" and bool(request_headers.get("origin"))
            and bool(request_headers.get("access-control-request-method")))


def preflight_headers(request_headers: Mapping[str, str], path_methods: list[str],
                      settings: Settings) -> dict[str, str]:
    """The answer to a preflight on a path serving `path_methods`: the
    methods and headers a page there may use, and for how long the browser
    may believe it; nothing for an origin or a method not allowed."""
    allowed = _allowed_origin(request_headers.get("origin"), settings)
    wanted = (request_headers.get("access-control-request-method") or "").upper()
    methods = [method for method in _names(settings.cors_allowed_methods.upper())
               if method in path_methods]
    if allowed is None or wanted not in methods:
        return {}
    found = _base(allowed, settings)
    found.update({"Access-Control-Allow-Methods": ", ".join(methods),
                  "Access-Control-Allow-Headers": settings.cors_allowed_headers,
                  "Access-Control-Max-Age": str(settings.cors_max_age)})
    return found


def first_origin(origins: str) -> str | None:
    """The one origin API Gateway's own answers can name, of a comma list."""
    names = _names(origins)
    return names[0] if names else None


def gateway_headers(origin: str, allow_credentials: bool) -> dict[str, str]:
    """The static CORS headers of API Gateway's own answers, which cannot echo
    the request's Origin: `origin` (first_origin of the stage's) only."""
    headers = {"Access-Control-Allow-Origin": origin}
    if origin != ANY:
        headers["Vary"] = "Origin"
    if allow_credentials:
        headers["Access-Control-Allow-Credentials"] = "true"
    return headers

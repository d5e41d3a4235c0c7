"""The calls this service makes to Keystone's identity API (v3).

Plain HTTP with the standard library: the Lambda package stays small and
nothing is imported that a request without a token would not need. Every
failure is one of two types, so no urllib type leaves this module: the
token (or the credentials) was refused, or Keystone could not be asked.
"""
from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

log = logging.getLogger("zaqar.keystone")


class Refused(Exception):
    """Keystone answered that the token or credentials are not valid."""


class Unavailable(Exception):
    """Keystone could not be reached, or answered with something unusable."""


def _call(method: str, url: str, timeout: float, headers: dict,
          body: dict | None = None) -> tuple[dict, dict]:
    """(answer's headers, answer's JSON document)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Accept": "application/json", "Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return dict(answer.headers), json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        # 404: the subject token is unknown, expired or revoked.
        if error.code in (401, 404):
            raise Refused(f"Keystone answered {error.code}") from None
        log.warning("Keystone answered %s to %s %s", error.code, method, url)
        raise Unavailable(f"Keystone answered {error.code}") from None
    except (OSError, ValueError) as error:  # unreachable, timed out, not JSON
        log.warning("Keystone failed on %s %s: %s", method, url, error)
        raise Unavailable(str(error)) from None


def validate(keystone_url: str, token: str, timeout: float) -> dict:
    """The token's document (`{"token": {...}}`). The token validates itself:
    Keystone's default policy lets a token's own user validate it, so the
    service needs no credentials of its own for this."""
    _, document = _call("GET", f"{keystone_url.rstrip('/')}/auth/tokens?nocatalog", timeout,
                        {"X-Auth-Token": token, "X-Subject-Token": token})
    return document

"""The calls this service makes to Keystone's identity API (v3).

Plain HTTP with the standard library: the Lambda package stays small and
nothing is imported that a request without a token would not need (urllib's
client, with http.client, email and ssl, on the first call). Every
failure is one of two types, so no urllib type leaves this module: the
token (or the credentials) was refused, or Keystone could not be asked.
"""
from __future__ import annotations

import datetime
import json
import logging
import urllib.parse

log = logging.getLogger("zaqar.keystone")
# What Keystone answers a request it will not grant (bad credentials, a
# caller that may not delegate, an unknown or expired trust, a bad role);
# validate() counts only 401 and 404, the token's own refusal, as refused.
REFUSALS = frozenset({400, 401, 403, 404})
MAX_ERROR_BYTES = 65536  # of a refusal's body, read for its message


class Refused(Exception):
    """Keystone answered that the token or credentials are not valid, or
    that what was asked is not allowed: `status` is its answer's,
    `message` its own explanation ("" when it gave none)."""

    def __init__(self, status: int, message: str = ""):
        super().__init__(f"Keystone answered {status}" + (f": {message}" if message else ""))
        self.status, self.message = status, message


class Unavailable(Exception):
    """Keystone could not be reached, or answered with something unusable."""


def _message(error: urllib.error.HTTPError) -> str:
    """Keystone's explanation in an error answer: {"error": {"message"}}."""
    try:
        message = json.loads(error.read(MAX_ERROR_BYTES))["error"]["message"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return message if isinstance(message, str) else ""


def _call(method: str, url: str, timeout: float, headers: dict, body: dict | None = None,
          refused: frozenset = frozenset({401, 404})) -> tuple[dict, dict]:
    """(answer's headers, answer's JSON document); Refused for an answer
    in `refused`."""
    import urllib.error
    import urllib.request
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Accept": "application/json", "Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return dict(answer.headers), json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        # For validate, 404: the subject token is unknown, expired or revoked.
        if error.code in refused:
            raise Refused(error.code, _message(error)) from None
        log.warning("Keystone answered %s to %s %s", error.code, method, url)
        raise Unavailable(f"Keystone answered {error.code}") from None
    except (OSError, ValueError) as error:  # unreachable, timed out, not JSON
        log.warning("Keystone failed on %s %s: %s", method, url, error)
        raise Unavailable(str(error)) from None


def validate(keystone_url: str, token: str, timeout: float,
             service_token: str | None = None) -> dict:
    """The token's document (`{"token": {...}}`). The token validates itself:
    Keystone's default policy lets a token's own user validate it, so the
    service needs no credentials of its own for this; but not a
    trust-scoped token, which only a `service_token` (of a user with the
    service or admin role) may validate: without one, such a token is
    Refused with status 403. A 403 to the service's own token means the
    service is not allowed: Unavailable."""
    _, document = _call("GET", f"{keystone_url.rstrip('/')}/auth/tokens?nocatalog", timeout,
                        {"X-Auth-Token": service_token or token, "X-Subject-Token": token},
                        refused=frozenset({401, 404} if service_token else {401, 403, 404}))
    return document


def expires_ms(token: dict) -> int:
    """When a token (a document's `token` object) expires, in epoch ms."""
    expires = datetime.datetime.fromisoformat(token["expires_at"].replace("Z", "+00:00"))
    return int(expires.timestamp() * 1000)


def password_token(keystone_url: str, user: str, domain: str, password: str, timeout: float,
                   trust_id: str | None = None) -> tuple[str, dict]:
    """(token, its document) for a password user: scoped as Keystone
    chooses (its default project, if any), or to the trust `trust_id`, of
    which the user must be the trustee."""
    auth = {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": domain}, "password": password}}}}
    if trust_id is not None:
        auth["scope"] = {"OS-TRUST:trust": {"id": trust_id}}
    headers, document = _call("POST", f"{keystone_url.rstrip('/')}/auth/tokens?nocatalog",
                              timeout, {}, {"auth": auth}, refused=REFUSALS)
    token = next((value for name, value in headers.items()
                  if name.lower() == "x-subject-token"), None)
    if not (token and _is_token(document)):
        raise Unavailable("Keystone's answer holds no token")
    return token, document


def _is_token(document: object) -> bool:
    """Whether a document holds what is read of a token: its user and expiry."""
    try:
        return isinstance(document["token"]["user"]["id"], str) and bool(
            expires_ms(document["token"]))
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def create_trust(keystone_url: str, token: str, *, trustor_user_id: str, trustee_user_id: str,
                 project_id: str, roles: list[str], expires_at: str, timeout: float,
                 impersonation: bool = True) -> dict:
    """The trust (`{"id": ..., ...}`) made with `token`, which must be the
    trustor's own: Keystone lets no one else delegate its roles."""
    _, document = _call("POST", f"{keystone_url.rstrip('/')}/OS-TRUST/trusts", timeout,
                        {"X-Auth-Token": token}, {"trust": {
                            "trustor_user_id": trustor_user_id,
                            "trustee_user_id": trustee_user_id, "project_id": project_id,
                            "impersonation": impersonation, "expires_at": expires_at,
                            "roles": [{"name": role} for role in roles]}},
                        refused=REFUSALS)
    trust = document.get("trust") if isinstance(document, dict) else None
    if not (isinstance(trust, dict) and isinstance(trust.get("id"), str)):
        raise Unavailable("Keystone's answer holds no trust")
    return trust


def get_trust(keystone_url: str, token: str, trust_id: str, timeout: float) -> dict:
    """The trust `trust_id` (`{"id", "trustor_user_id", "trustee_user_id",
    "project_id", ...}`) as `token`'s user sees it: Keystone shows a trust
    to its trustor and its trustee (and admins), and answers 403 to anyone
    else and 404 for a trust it does not have (deleted, expired): Refused
    with that status."""
    url = f"{keystone_url.rstrip('/')}/OS-TRUST/trusts/{urllib.parse.quote(trust_id, safe='')}"
    _, document = _call("GET", url, timeout, {"X-Auth-Token": token}, refused=REFUSALS)
    trust = document.get("trust") if isinstance(document, dict) else None
    if not (isinstance(trust, dict) and trust.get("id") == trust_id):
        raise Unavailable("Keystone's answer holds no trust")
    return trust

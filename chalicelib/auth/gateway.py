"""API Gateway's authorizer (a REQUEST authorizer, packaged by infra/package.py)
and how a route reads what it decided.

It runs before every route but the open ones, with the request's headers,
and passes the caller's identity to the route in the request context. It
is a REQUEST authorizer, uncached, because Zaqar's signed URLs carry no
token: a TOKEN authorizer (or any cached one) needs its header on every
request and would refuse them before any code ran. Its own cache
(auth/keystone.py) keeps Keystone out of warm calls.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.auth import Identity, authenticate, unauthorized
from chalicelib.errors import ServiceUnavailable, Unauthorized

if TYPE_CHECKING:
    from chalicelib.config import Settings

# (method, path) pairs served to anyone: the versions document (as Zaqar)
# and the API's OpenAPI description.
OPEN_ROUTES = frozenset({("GET", "/"), ("GET", "/v2/openapi.json")})
SIGNED = "signed-url"  # the principal of a request that carries a URL signature


class Refused(Exception):
    """Raised with the message API Gateway turns into its 401 (UNAUTHORIZED)."""

    def __init__(self):
        super().__init__("Unauthorized")


def is_open(method: str, path: str) -> bool:
    # OPTIONS everywhere too: a browser's CORS preflight carries no
    # credentials, and the answer tells only which methods a path has.
    return method == "OPTIONS" or (method, path) in OPEN_ROUTES


def _allow_all(method_arn: str) -> str:
    # arn:aws:execute-api:region:account:api/stage/METHOD/path -> .../stage/*/*
    api, stage = method_arn.split("/")[:2]
    return f"{api}/{stage}/*/*"


def authorize(event: dict, settings: Settings) -> dict:
    """The authorizer's answer to one REQUEST event: Allow, with the caller in
    the context; Refused (401) for missing or refused credentials; any other
    error fails the call (API Gateway's AUTHORIZER_FAILURE, a 503 here)."""
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    if headers.get("url-signature") is not None:
        # Zaqar lets a signed request in without a token: the route checks
        # the signature, which binds the one project it may act for.
        principal, context = SIGNED, {}
    else:
        try:
            identity = authenticate(headers, settings)
        except Unauthorized:
            raise Refused() from None
        principal, context = identity.user_id or "anonymous", context_of(identity)
    return {"principalId": principal, "context": context, "policyDocument": {
        "Version": "2012-10-17",
        "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow",
                       "Resource": [_allow_all(event["methodArn"])]}]}}


def context_of(identity: Identity) -> dict:
    # API Gateway passes context values on as strings.
    return {"project": identity.project or "", "roles": ",".join(sorted(identity.roles)),
            "user_id": identity.user_id or "", "expires_ms": str(identity.expires_ms or "")}


def identity_in(request_context: dict | None) -> Identity | None:
    """The identity the authorizer passed on; None if none ran, or it let a
    signed request in."""
    context = (request_context or {}).get("authorizer") or {}
    if "project" not in context:
        return None
    roles = frozenset(role for role in context.get("roles", "").split(",") if role)
    expires = context.get("expires_ms")
    return Identity(project=context["project"] or None, roles=roles,
                    user_id=context.get("user_id") or None,
                    expires_ms=int(expires) if expires else None)


def gateway_responses(settings: Settings) -> dict[str, tuple[int, dict, dict]]:
    """{response type: (status, headers, body)}: what API Gateway answers
    itself when the authorizer refuses (Refused) or fails, in Zaqar's error
    shape. Packaging writes them into the template; the local runner
    answers with them."""
    refused = unauthorized(settings)
    failed = ServiceUnavailable("The caller's credentials could not be checked.")
    return {"UNAUTHORIZED": (refused.status, refused.headers, refused.body()),
            "AUTHORIZER_FAILURE": (failed.status, {}, failed.body())}

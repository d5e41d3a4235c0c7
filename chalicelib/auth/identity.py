"""The caller, as an auth mode found it, and what every transport checks
of it the same way."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.errors import Forbidden, Unauthorized
from chalicelib.validation import Context, check_client_id, check_project, request_project

if TYPE_CHECKING:
    from chalicelib.config import Settings


@dataclass(frozen=True)
class Identity:
    project: str | None
    roles: frozenset[str]
    user_id: str | None = None
    expires_ms: int | None = None  # when its token expires; None: never


def credential(headers: Mapping[str, str]) -> str | None:
    """What the caller presents: X-Auth-Token (Zaqar's, which zaqarclient
    sends) or else an `Authorization: Bearer` token (a browser's, an OIDC
    client's)."""
    token = headers.get("x-auth-token")
    if token:
        return token
    scheme, _, value = (headers.get("authorization") or "").strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def unauthorized(settings: Settings) -> Unauthorized:
    """401 with where to get a token, as keystonemiddleware answers."""
    headers = {}
    if settings.keystone_url:
        headers["WWW-Authenticate"] = f'Keystone uri="{settings.keystone_url}"'
    return Unauthorized("The request you have made requires authentication.",
                        headers=headers)


def acting_project(identity: Identity, headers: Mapping[str, str]) -> str | None:
    """The project a request acts for: its identity's. X-Project-ID may name
    it again, but never another (403, as Zaqar's websocket answers)."""
    named = request_project(headers)
    if named is not None and identity.project is not None and named != identity.project:
        raise Forbidden("X-Project-ID names another project than the caller's.",
                        title="Not authenticated")
    return identity.project


def expired(identity: Identity, now_ms: int) -> bool:
    return identity.expires_ms is not None and identity.expires_ms <= now_ms


def context_for(headers: Mapping[str, str], identity: Identity,
                settings: Settings) -> Context:
    """The Context an action runs with, after Zaqar's header checks: a
    Client-ID, and the caller's project. The caller's X-Auth-Token goes
    along for the actions that call Keystone as the caller (a trust+
    subscription's trust); on the websocket, the frame's."""
    client_id = headers.get("client-id")
    check_client_id(client_id, settings)
    project = acting_project(identity, headers)
    check_project(project)
    return Context(project=project, client_id=client_id, roles=identity.roles,
                   settings=settings, user_id=identity.user_id,
                   auth_token=headers.get("x-auth-token") or None)

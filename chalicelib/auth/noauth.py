"""No authentication: the caller is whoever its headers say (dev stage)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from chalicelib.auth.identity import Identity
from chalicelib.validation import request_project

if TYPE_CHECKING:
    from chalicelib.config import Settings


def authenticate(headers: Mapping[str, str], settings: Settings) -> Identity:
    roles = frozenset(role.strip() for role in (headers.get("x-roles") or "").split(",")
                      if role.strip())
    return Identity(project=request_project(headers), roles=roles)

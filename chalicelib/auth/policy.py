"""Zaqar's policy: which roles each rule asks for.

Zaqar's defaults ask for the admin role on health, pools and flavor
changes, and for nothing beyond authentication elsewhere (any role,
reader included); tenant isolation comes from the caller's project, not
from rules. A stage may override rules with its `policy` setting, JSON
{"rule": "check"}, where a check is "" (any caller), "!" (no one), or
role checks joined by "or": "role:admin or role:member".
"""
from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING

from chalicelib.errors import Forbidden

if TYPE_CHECKING:
    from chalicelib.config import Settings

ADMIN = "role:admin"
DEFAULTS = {
    "home:get": "",
    "ping:get": "",
    "health:get": ADMIN,
    **{f"queues:{verb}": "" for verb in (
        "get_all", "create", "get", "delete", "update", "stats", "share", "purge")},
    **{f"topics:{verb}": "" for verb in (
        "get_all", "create", "get", "delete", "update", "stats", "purge")},
    **{f"messages:{verb}": "" for verb in ("get_all", "create", "get", "delete", "delete_all")},
    **{f"claims:{verb}": "" for verb in ("create", "get", "delete", "update")},
    **{f"subscription:{verb}": "" for verb in (
        "get_all", "create", "get", "delete", "update", "confirm")},
    **{f"pools:{verb}": ADMIN for verb in ("get_all", "create", "get", "delete", "update")},
    "flavors:get_all": "",
    "flavors:get": "",
    **{f"flavors:{verb}": ADMIN for verb in ("create", "delete", "update")},
    # Not Zaqar's: API keys (rest/keys.py) are issued by administrators.
    **{f"keys:{verb}": ADMIN for verb in ("create", "get_all", "get", "delete")},
}


class BadPolicy(ValueError):
    pass


def _roles_of(check: str) -> frozenset[str] | None:
    """The roles a check accepts; None for any caller."""
    check = check.strip()
    if check in ("", "@"):
        return None
    if check == "!":
        return frozenset()
    roles = set()
    for term in check.split(" or "):
        kind, _, role = term.strip().partition(":")
        if kind != "role" or not role:
            raise BadPolicy(f"cannot read the check {check!r}: use '', '!' or "
                            "'role:<name>' terms joined by 'or'")
        roles.add(role)
    return frozenset(roles)


@functools.lru_cache(maxsize=8)
def rules(overrides: str) -> dict[str, frozenset[str] | None]:
    """{rule: accepted roles or None}, the defaults with `overrides` over them."""
    checks = dict(DEFAULTS)
    if overrides:
        given = json.loads(overrides)
        unknown = set(given) - set(DEFAULTS)
        if unknown:
            raise BadPolicy(f"no such rules: {', '.join(sorted(unknown))}")
        checks.update(given)
    return {rule: _roles_of(check) for rule, check in checks.items()}


def enforce(rule: str, roles: frozenset[str], settings: Settings) -> None:
    accepted = rules(settings.policy)[rule]
    if accepted is not None and not accepted & roles:
        raise Forbidden("You are not authorized to complete this action.")

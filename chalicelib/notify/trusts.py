"""Keystone trusts for `trust+http(s)://` subscribers, as Zaqar makes and
uses them (auth-notes §4.3).

At subscribe (`create`), the caller delegates its roles on its project to
the service's own Keystone user, the trustee, with the caller's own token
(Keystone lets only the trustor create a trust), impersonating, until the
subscription expires. A trust the caller names instead (options.trust_id)
must be one it made for the trustee on its project (`is_callers`): options
are readable by the whole project, so a member could otherwise have
another's trust deliver tokens acting as that other to its own URL.

At delivery (`token_for`), the trustee gets a token scoped to that trust,
which the webhook carries as X-Auth-Token: the subscriber can act as the
caller, in its project, with its roles. The trustee's own token
(`service_token`) also validates the tokens Keystone lets no one else
validate, trust-scoped ones among them: a subscriber that calls this
service back with its delivery's token, as tempest's does.

Unlike Zaqar, which asks Keystone for a token on every delivery, a warm
function reuses a trust's token for up to `keystone_cache_seconds`, and
never within TOKEN_MARGIN_MS of its expiry, so that the subscriber gets a
token it can still use; a revoked trust's token is thus sent for that long
at most. The trustee's own token is kept until TOKEN_MARGIN_MS before its
expiry, its password read once per warm function (from SSM when a parameter
names it).
"""
from __future__ import annotations

import datetime
import logging
import re
import threading
from typing import TYPE_CHECKING

from chalicelib import clock, keystone_api, parameters
from chalicelib.errors import ServiceUnavailable

if TYPE_CHECKING:
    from chalicelib.config import Settings

log = logging.getLogger("zaqar.notify")
PREFIX = "trust+"  # trust+http://host/path is delivered to http://host/path
TOKEN_MARGIN_MS = 300_000
_CACHE_MAX = 10_000  # trust tokens kept; dropped wholesale when full
# What a trust id may be before Keystone is asked about it (its ids are
# 32 hex digits): nothing that would change the path asked for.
_TRUST_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")

# (keystone, user, domain) -> (its token, its user id, kept until, epoch ms)
_trustees: dict[tuple[str, str, str], tuple[str, str, int]] = {}
# (keystone, user, trust id) -> (token, reused until, epoch ms)
_tokens: dict[tuple[str, str, str], tuple[str, int]] = {}
# Deliveries run in threads: one token request at a time.
_token_lock, _trustee_lock = threading.Lock(), threading.Lock()


class NotConfigured(Exception):
    """No trustee: its user name or its password is not set."""


def is_trust(subscriber: object) -> bool:
    return isinstance(subscriber, str) and subscriber[:len(PREFIX)].lower() == PREFIX


def webhook_url(subscriber: str) -> str:
    return subscriber[len(PREFIX):]


def configured(settings: Settings) -> bool:
    return bool(settings.keystone_trustee_user and (
        settings.keystone_trustee_password or settings.keystone_trustee_password_parameter))


def _password(settings: Settings) -> str:
    try:
        return parameters.value(settings.keystone_trustee_password,
                                settings.keystone_trustee_password_parameter, settings)
    except ServiceUnavailable:
        name = settings.keystone_trustee_password_parameter
        raise keystone_api.Unavailable(f"SSM parameter {name} could not be read") from None


def _authenticate(settings: Settings, trust_id: str | None = None) -> tuple[str, dict]:
    if not configured(settings):
        raise NotConfigured("no trustee is configured (KEYSTONE_TRUSTEE_USER and its password)")
    return keystone_api.password_token(
        settings.keystone_url, settings.keystone_trustee_user,
        settings.keystone_trustee_domain, _password(settings), settings.keystone_timeout,
        trust_id=trust_id)


def _trustee(settings: Settings) -> tuple[str, str]:
    """(the trustee's own token, its user id)."""
    key = (settings.keystone_url, settings.keystone_trustee_user,
           settings.keystone_trustee_domain)
    with _trustee_lock:
        known = _trustees.get(key)
        if known is not None and known[2] > clock.now_ms():
            return known[:2]
        try:
            token, document = _authenticate(settings)
        except keystone_api.Refused as refused:
            # The service's own credentials: its failure, not the caller's.
            log.error("Keystone refused the trustee %s: %s", key[1], refused)
            raise keystone_api.Unavailable("the trustee's credentials were refused") from None
        _trustees[key] = (token, document["token"]["user"]["id"],
                          keystone_api.expires_ms(document["token"]) - TOKEN_MARGIN_MS)
        return _trustees[key][:2]


def service_token(settings: Settings) -> str:
    """The trustee's own token, scoped as Keystone chooses: to its default
    project, where its `service` role lets it validate any token. Errors
    as `create`'s."""
    return _trustee(settings)[0]


def _iso(epoch_ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(epoch_ms / 1000, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def create(settings: Settings, caller_token: str, trustor_user_id: str, project: str,
           roles: frozenset[str], expires_ms: int) -> str:
    """A new trust from the caller to the trustee, for the caller's roles on
    `project` until `expires_ms`; its id. NotConfigured without a trustee;
    keystone_api.Refused when Keystone will not create it (its status says
    why); keystone_api.Unavailable when Keystone (or SSM) cannot be asked."""
    trust = keystone_api.create_trust(
        settings.keystone_url, caller_token, trustor_user_id=trustor_user_id,
        trustee_user_id=_trustee(settings)[1], project_id=project, roles=sorted(roles),
        expires_at=_iso(expires_ms), timeout=settings.keystone_timeout)
    return trust["id"]


def is_callers(settings: Settings, caller_token: str, trustor_user_id: str, project: str,
               trust_id: str) -> bool:
    """Whether `trust_id` names a trust from the caller (`trustor_user_id`,
    asking with its own token) to this service's trustee on `project`. A
    trust Keystone will not show the caller (403: not its trustor; 404: no
    such trust, or deleted, or expired) is not. keystone_api.Refused for
    Keystone's other refusals (401: the caller's token is no longer valid);
    otherwise errors as `create`'s."""
    if not _TRUST_ID.fullmatch(trust_id):
        return False
    try:
        trust = keystone_api.get_trust(settings.keystone_url, caller_token, trust_id,
                                       settings.keystone_timeout)
    except keystone_api.Refused as refused:
        if refused.status in (403, 404):
            return False
        raise
    return (trust.get("trustor_user_id") == trustor_user_id
            and trust.get("project_id") == project
            and trust.get("trustee_user_id") == _trustee(settings)[1])


def token_for(settings: Settings, trust_id: str) -> str:
    """A token scoped to the trust, for one delivery; errors as `create`'s."""
    key = (settings.keystone_url, settings.keystone_trustee_user, trust_id)
    with _token_lock:
        now = clock.now_ms()
        known = _tokens.get(key)
        if known is not None and known[1] > now:
            return known[0]
        token, document = _authenticate(settings, trust_id)
        until = min(now + settings.keystone_cache_seconds * 1000,
                    keystone_api.expires_ms(document["token"]) - TOKEN_MARGIN_MS)
        if len(_tokens) >= _CACHE_MAX:
            _tokens.clear()
        _tokens[key] = (token, until)
        return token

"""Subscription actions, shared by the REST and websocket transports."""
from __future__ import annotations

import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from chalicelib import clock, keystone_api
from chalicelib.actions import queues, quotas, storage
from chalicelib.actions.messages import load_queue
from chalicelib.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable
from chalicelib.notify import delivery, fanout, targets, trusts
from chalicelib.storage.errors import SubscriberTaken
from chalicelib.validation import check_limit, check_queue_name, validate

if TYPE_CHECKING:
    from chalicelib.storage.base import Subscription
    from chalicelib.validation import Context

# Zaqar's `subscriber_types`; the trust+ ones need Keystone and a trustee.
SUBSCRIBER_TYPES = ["http", "https", "mailto", "trust+http", "trust+https"]
UNSUPPORTED = ("The subscriber type of subscription must be supported in the list "
               f"{SUBSCRIBER_TYPES}.")
FIELDS = ("subscriber", "ttl", "options")
DUPLICATE = ("Such subscription already exists.Subscriptions are unique by project "
             "+ queue + subscriber URI.")  # sic: Zaqar's text


def _not_found(subscription_id):
    return NotFound(f"Subscription {subscription_id} does not exist")


def _time(epoch_ms):
    """ISO 8601, UTC, to the second: 2026-11-29T07:03:41Z."""
    moment = datetime.datetime.fromtimestamp(epoch_ms // 1000, datetime.timezone.utc)
    return moment.isoformat().replace("+00:00", "Z")


def view(subscription: Subscription, now: int) -> dict:
    """A subscription as both transports show it: Zaqar's fields, plus how
    delivery went: deliveries that failed for good (refused, or out of
    retries) and the last such failure."""
    last_error = subscription.last_error
    return {"id": subscription.id, "source": subscription.source,
            "subscriber": subscription.subscriber, "ttl": subscription.ttl,
            "age": subscription.age(now), "options": subscription.options,
            "confirmed": subscription.confirmed,
            "failed_deliveries": subscription.failures,
            "last_error": last_error and {"time": _time(last_error["time"]),
                                          "description": last_error["description"]}}


def _check_subscriber(subscriber, settings, on_topic):
    if not isinstance(subscriber, str):
        raise BadRequest(UNSUPPORTED)
    invalid = BadRequest(f"The subscriber {subscriber} is not a valid URL.")
    try:
        scheme = urlsplit(subscriber).scheme.lower()
    except ValueError:
        raise invalid
    if fanout.is_queue(subscriber) and on_topic:  # a queue of the topic's project
        check_queue_name(fanout.queue_named(subscriber))
        return
    if scheme not in SUBSCRIBER_TYPES:
        raise BadRequest(UNSUPPORTED)
    if scheme.startswith(trusts.PREFIX):
        _check_trusts_available(scheme, settings)
        subscriber = trusts.webhook_url(subscriber)  # checked as the webhook it is
    if scheme != "mailto":
        try:
            targets.check_subscriber(subscriber, settings)
        except ValueError:
            raise invalid
        except targets.RefusedTarget as refused:
            raise BadRequest(f"The subscriber is refused: {refused}.")


def _check_trusts_available(scheme, settings):
    webhook = scheme[len(trusts.PREFIX):]
    if settings.auth_strategy != "keystone":
        raise BadRequest(f"The subscriber type {scheme} needs Keystone trusts, which "
                         f"this service does not have; use {webhook} instead.")
    if not trusts.configured(settings):
        raise BadRequest(f"The subscriber type {scheme} needs Keystone trusts, which "
                         "this service does not have: no trustee (the service's Keystone "
                         f"user) is configured; use {webhook} instead.")


NEEDS_TOKEN = ("A trust+ subscriber needs the caller's own token to {}: send X-Auth-Token "
               "with the request (on the websocket, with the frame).")
NOT_CALLERS = ("options.trust_id names a trust the caller did not make for this service in "
               "this project.")


def _check_given_trust(ctx, trust_id):
    """A trust_id the caller names must be a trust it made for the trustee,
    on its project: options are readable by the whole project, so another
    member's trust would deliver tokens acting as that member to this
    caller's URL. Keystone is asked with the caller's own token."""
    if not (ctx.auth_token and ctx.user_id):
        raise BadRequest(NEEDS_TOKEN.format("check options.trust_id with"))
    try:
        callers = trusts.is_callers(ctx.settings, ctx.auth_token, ctx.user_id, ctx.project,
                                    trust_id)
    except keystone_api.Refused as refused:
        raise BadRequest("Keystone refused to show the trust options.trust_id names: "
                         f"{refused.message or refused}")
    except keystone_api.Unavailable:
        raise ServiceUnavailable("The Keystone service is temporarily unavailable.")
    if not callers:
        raise Forbidden(NOT_CALLERS)


def _with_trust(ctx, options, expires_ms):
    """The options of a trust+ subscription: with the `trust_id` they name,
    once Keystone showed it is the caller's (for the trustee, on the
    caller's project), or that of a new trust from the caller to the
    trustee, for the caller's roles in its project, until `expires_ms`."""
    if "trust_id" in options:
        if not isinstance(options["trust_id"], str):
            raise BadRequest("options.trust_id must be a string.")
        _check_given_trust(ctx, options["trust_id"])
        return options
    if not (ctx.auth_token and ctx.user_id):
        raise BadRequest(NEEDS_TOKEN.format("make a trust with"))
    try:
        trust_id = trusts.create(ctx.settings, ctx.auth_token, ctx.user_id, ctx.project,
                                 ctx.roles, expires_ms)
    except keystone_api.Refused as refused:
        error = Forbidden if refused.status == 403 else BadRequest
        raise error("Keystone refused to create a trust for the subscription: "
                    f"{refused.message or refused}")
    except keystone_api.Unavailable:
        raise ServiceUnavailable("The Keystone service is temporarily unavailable.")
    return {**options, "trust_id": trust_id}


def _trust_on_update(ctx, queue_name, subscription_id, fields):
    """The fields of a PATCH with the trust a trust+ subscriber needs: a new
    subscriber gets a new trust (the old one was made for another URL,
    maybe by someone else), unless the options name one, which must be the
    caller's; options replaced for the same trust+ subscriber keep its
    trust, or name the one it has, or another of the caller's."""
    subscriber, options = fields.get("subscriber"), fields.get("options")
    if subscriber is not None and not trusts.is_trust(subscriber):
        return fields
    if subscriber is None and options is None:
        return fields
    current = get(ctx, queue_name, subscription_id)
    if subscriber is None or subscriber == current.subscriber:
        if options is None or not trusts.is_trust(current.subscriber):
            return fields  # a plain webhook's options: no trust is used
        kept = current.options.get("trust_id")
        if "trust_id" not in options:
            if kept is None:
                return fields
            return {**fields, "options": {**options, "trust_id": kept}}
        if options["trust_id"] == kept:
            return fields  # the one it has: checked when it was given
        return {**fields, "options": _with_trust(ctx, options, current.expires)}
    if options is None:
        options = {name: value for name, value in current.options.items()
                   if name != "trust_id"}
    expires = (clock.now_ms() + fields["ttl"] * 1000 if "ttl" in fields
               else current.expires)
    return {**fields, "options": _with_trust(ctx, options, expires)}


def _check_fields(document, ctx):
    """The subscription fields of a POST or PATCH body, checked."""
    settings = ctx.settings
    validate("subscription_fields", document, settings)
    if "subscriber" in document:
        _check_subscriber(document["subscriber"], settings, fanout.owner(ctx.project)[1])
    options = document.get("options") or {}
    if "_retry_policy" in options:
        queues.check_metadata({"_retry_policy": options["_retry_policy"]}, settings)
    return {name: document[name] for name in FIELDS if name in document}


def create(ctx: Context, queue_name: str, document: object) -> tuple[str, bool]:
    """Subscribe; returns (subscription id, created). A subscriber that
    already has an unconfirmed subscription on the queue gets its id again
    (and the confirmation request again); a confirmed one is a conflict.
    A missing queue is created, as in Zaqar."""
    check_queue_name(queue_name)
    settings = ctx.settings
    if isinstance(document, dict) and "subscriber" not in document:
        raise BadRequest("Missing parameter subscriber in body.")
    fields = _check_fields(document, ctx)
    quotas.check_new_subscription(ctx, queue_name, fields["subscriber"])
    load_queue(ctx, queue_name, create=True)
    ttl = fields.get("ttl", settings.default_subscription_ttl)
    options = fields.get("options") or {}
    if trusts.is_trust(fields["subscriber"]):
        options = _with_trust(ctx, options, clock.now_ms() + ttl * 1000)
    subscription, created = storage(ctx).subscriptions.create(
        ctx.project, queue_name, fields["subscriber"], ttl, options)
    if not created and subscription.confirmed:
        raise Conflict(DUPLICATE)
    _ask_to_confirm(ctx, queue_name, subscription)
    return subscription.id, created


def _ask_to_confirm(ctx, queue_name, subscription):
    """Send the subscriber the confirmation request; a queue of the topic's
    own project has nobody to ask: it is confirmed at once."""
    if fanout.is_queue(subscription.subscriber):
        storage(ctx).subscriptions.confirm(ctx.project, queue_name, subscription.id, True)
    else:
        delivery.send_confirmation(subscription, ctx.project, ctx.settings)


def list_subscriptions(ctx: Context, queue_name: str, marker: str | None = None,
                       limit: int | None = None) -> list[Subscription]:
    """A page of the queue's live subscriptions, in creation order."""
    check_queue_name(queue_name)
    limit = 10 if limit is None else limit
    check_limit(limit, ctx.settings.max_subscriptions_per_page, "may not be greater than")
    return storage(ctx).subscriptions.list_page(ctx.project, queue_name, marker=marker, limit=limit)


def get(ctx: Context, queue_name: str, subscription_id: str) -> Subscription:
    check_queue_name(queue_name)
    subscription = storage(ctx).subscriptions.get(ctx.project, queue_name, subscription_id)
    if subscription is None:
        raise _not_found(subscription_id)
    return subscription


def update(ctx: Context, queue_name: str, subscription_id: str, document: object) -> None:
    """Change the subscriber, ttl or options (which replace the old ones). A
    new subscriber must confirm again when confirmation is required."""
    check_queue_name(queue_name)
    document = {} if document is None else document
    if isinstance(document, dict):
        if not document:
            raise BadRequest("No subscription to create.")
        # Zaqar reads a null as "leave as is": the openstack CLI sends one for
        # every field not given (subscription update --ttl 7200).
        document = {name: value for name, value in document.items() if value is not None}
    fields = _check_fields(document, ctx)
    if not fields:
        if storage(ctx).subscriptions.get(ctx.project, queue_name, subscription_id) is None:
            raise _not_found(subscription_id)
        return
    fields = _trust_on_update(ctx, queue_name, subscription_id, fields)
    try:
        subscription = storage(ctx).subscriptions.update(ctx.project, queue_name,
                                                         subscription_id, **fields)
    except SubscriberTaken:
        raise Conflict(DUPLICATE)
    if subscription is None:
        raise _not_found(subscription_id)
    if not subscription.confirmed and "subscriber" in fields:
        _ask_to_confirm(ctx, queue_name, subscription)


def delete(ctx: Context, queue_name: str, subscription_id: str) -> None:
    check_queue_name(queue_name)
    storage(ctx).subscriptions.delete(ctx.project, queue_name, subscription_id)


def confirm(ctx: Context, queue_name: str, subscription_id: str, document: object) -> None:
    """Confirm, or unconfirm, the subscription; unconfirming sends the
    subscriber a notice, as Zaqar does."""
    check_queue_name(queue_name)
    validate("subscription_confirm", {} if document is None else document, ctx.settings)
    confirmed = document["confirmed"]
    subscription = storage(ctx).subscriptions.confirm(ctx.project, queue_name,
                                                      subscription_id, confirmed)
    if subscription is None:
        raise _not_found(subscription_id)
    if not confirmed:
        delivery.send_confirmation(subscription, ctx.project, ctx.settings, unsubscribe=True)

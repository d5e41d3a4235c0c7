"""Delivering one payload to one subscription, and retrying it.

An attempt that fails in a way worth retrying is followed by the next as
the retry policy says: a retry due at once is made at once while the call
has time, a later one is saved as a pending delivery, which `retries.run`
makes when it falls due. A delivery that fails for good, or uses up its
retries, is recorded on its subscription (failure count and last error,
shown by GET): none is dropped silently.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from chalicelib import clock, keystone_api, parameters, telemetry
from chalicelib.errors import ServiceUnavailable
from chalicelib.notify import fanout, payloads, transports, trusts
from chalicelib.notify import policy as retry_policy

if TYPE_CHECKING:
    from chalicelib.storage.base import Subscription

log = logging.getLogger("zaqar.notify")
MARGIN_MS = 1000  # left free after the last attempt a call starts
# Subscriber schemes served by a layer above this one: scheme -> deliver(
# subscriber URI, payload) -> Outcome. The websocket transport adds "wss".
_other_transports = {}


def add_transport(scheme, deliver):
    _other_transports[scheme] = deliver


@dataclass
class Delivery:
    subscription: Subscription
    payload: dict
    policy: dict  # the retry policy that applies, defaults filled in
    attempts: int = 0  # made so far
    last_error: str = None


@dataclass
class Call:
    """What one function call gives its deliveries: time until `deadline_ms`
    (epoch ms; None: no limit), up to `attempts` attempts each (None: as
    many as the policy makes at once), and no attempt for a subscription
    while it is failing: once an attempt failed and must wait, the others of
    that subscriber in the call wait too, until its next retry is due
    (`failing`: subscription id -> epoch ms). So a subscriber that is down or
    slow holds up the others for one attempt's time at most."""
    deadline_ms: int = None
    attempts: int = None
    failing: dict = field(default_factory=dict)

    def has_time(self, settings):
        """Whether an attempt started now ends before the deadline."""
        return (self.deadline_ms is None or clock.now_ms() + settings.webhook_timeout * 1000
                + MARGIN_MS <= self.deadline_ms)

    def is_failing(self, subscription_id):
        return self.failing.get(subscription_id, 0) > clock.now_ms()


def deliver(delivery, settings, call):
    """Attempt the delivery until it succeeds, fails for good or must wait
    for a later retry, while the call allows. What is left is saved as
    pending."""
    subscription_id = delivery.subscription.id
    made = 0
    while (call.has_time(settings) and made != call.attempts
           and not call.is_failing(subscription_id)):
        outcome = send(delivery.subscription, delivery.payload, settings)
        made += 1
        delivery.attempts += 1
        if outcome.delivered:
            return
        telemetry.count(telemetry.DELIVERIES_FAILED)
        delivery.last_error = outcome.reason
        if not outcome.retryable:
            _give_up(delivery, outcome.reason)
            return
        delay = retry_policy.delay_after(delivery.policy, delivery.attempts)
        if delay is None:
            call.failing[subscription_id] = math.inf
            _give_up(delivery, f"{outcome.reason} ({delivery.attempts} attempts)")
            return
        if delay:
            due = clock.now_ms() + delay * 1000
            call.failing[subscription_id] = due
            _save(delivery, due)
            return
    _save(delivery, due=clock.now_ms())


def send(subscription, payload, settings):
    """One attempt, by the subscriber's scheme: an Outcome."""
    scheme = urlsplit(subscription.subscriber).scheme.lower()
    try:
        if scheme == "mailto":
            mail = payloads.mail(subscription.subscriber, subscription.options, payload,
                                 settings)
            return transports.send_mail(*mail, settings)
        if fanout.is_queue(subscription.subscriber):  # a topic's queue
            return fanout.post_copy(subscription, payload)
        if scheme in _other_transports:  # added by a transport: websocket connections
            return _other_transports[scheme](subscription.subscriber, payload)
        if trusts.is_trust(subscription.subscriber):
            return _post_with_trust(subscription, payload, settings)
        headers, body = payloads.webhook_request(subscription.options, payload)
        return transports.post(subscription.subscriber, headers, body, settings)
    except ValueError as unsendable:  # e.g. no sender, a header that is no header
        return transports.Outcome(False, reason=str(unsendable))


def _post_with_trust(subscription, payload, settings):
    """A trust+ subscriber's webhook: the URL after `trust+`, with a token
    of the subscription's trust as X-Auth-Token (the service's own: no
    post_headers entry replaces it). No token is a failed attempt, retried
    as the policy says: Keystone may be back, the trustee fixed."""
    trust_id = subscription.options.get("trust_id")
    if not isinstance(trust_id, str) or not trust_id:
        raise ValueError("the subscription has no trust_id")
    try:
        token = trusts.token_for(settings, trust_id)
    except (trusts.NotConfigured, keystone_api.Refused, keystone_api.Unavailable) as failure:
        return transports.Outcome(False, retryable=True,
                                  reason=f"no token for trust {trust_id}: {failure}")
    headers, body = payloads.webhook_request(subscription.options, payload)
    headers = {name: value for name, value in headers.items() if name.lower() != "x-auth-token"}
    headers["X-Auth-Token"] = token
    return transports.post(trusts.webhook_url(subscription.subscriber), headers, body, settings)


def _give_up(delivery, description):
    subscription = delivery.subscription
    log.warning("delivery to subscription %s of %s failed: %s", subscription.id,
                subscription.queue, description)
    from chalicelib.storage import subscriptions as store  # see _save
    store.record_failure(subscription.queue, subscription.id, description)


def _save(delivery, due):
    # On first use: the API imports this module for confirmations, and the
    # store's pynamodb costs ~150 ms of a cold start.
    from chalicelib.storage import subscriptions as store
    store.save_pending(delivery.subscription.queue, delivery.subscription.id,
                       delivery.payload, delivery.policy, delivery.attempts,
                       delivery.last_error, due)


def send_confirmation(subscription, project, settings, unsubscribe=False):
    """Ask the subscriber to confirm the subscription (or tell it that it was
    unconfirmed), when confirmation is required. One attempt now, within the
    API call; retries, by the subscription's own policy, come later."""
    if not settings.require_confirmation:
        return
    try:
        key = parameters.signed_url_key(settings)
    except ServiceUnavailable:  # logged where it was read
        key = ""
    if not key:
        log.error("confirmation of subscription %s not sent: no signed URL key "
                  "(SIGNED_URL_SECRET_KEY, or the SSM parameter "
                  "SIGNED_URL_SECRET_KEY_PARAMETER names)", subscription.id)
        return
    ttl = settings.default_subscription_ttl if unsubscribe else subscription.ttl
    project, on_topic = fanout.owner(project)
    payload = payloads.confirmation(subscription.source, subscription.id, project,
                                    clock.now_ms() + ttl * 1000, key, unsubscribe=unsubscribe,
                                    kind="topics" if on_topic else "queues")
    policy = retry_policy.effective(subscription.options, {})
    deliver(Delivery(subscription, payload, policy), settings, Call(attempts=1))

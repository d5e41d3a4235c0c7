"""The retry worker: makes the pending deliveries as they fall due.

It runs on a schedule (EventBridge fires it at most once a minute). A run
keeps going while deliveries fall due before its time is up, sleeping until
the next one, so delays shorter than a minute are kept as the policy says
for as long as a run lasts; deliveries due later wait for a later run.
"""
import contextvars
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from chalicelib import clock
from chalicelib.notify import payloads
from chalicelib.notify.delivery import MARGIN_MS, Call, Delivery, deliver
from chalicelib.storage import subscriptions as store

log = logging.getLogger("zaqar.notify")
POLL_S = 1.0


def run(deadline_ms, settings, sleep=time.sleep):
    """Make the deliveries that fall due before the deadline (epoch ms)."""
    call = Call(deadline_ms)
    last_start = deadline_ms - settings.webhook_timeout * 1000 - MARGIN_MS
    while clock.now_ms() <= last_start:
        pending = store.pending_until(last_start)
        if not pending:
            return
        now = clock.now_ms()
        due = [item for item in pending if item.due <= now]
        if not due:
            # Not longer than POLL_S: deliveries saved meanwhile may fall due first.
            sleep(min(POLL_S, (min(item.due for item in pending) - now) / 1000))
            continue
        with ThreadPoolExecutor(settings.max_notifier_workers,
                                thread_name_prefix="notify-retry") as pool:
            for item in due:
                # In a copy of this context each: failures count for this run.
                pool.submit(contextvars.copy_context().run, _attempt, item, settings, call)


def _attempt(item, settings, call):
    try:
        # Held until the run ends: nobody else makes this attempt meanwhile,
        # and one of a subscriber that failed in this run waits for the next.
        if not store.take_pending(item, call.deadline_ms - clock.now_ms() + MARGIN_MS):
            return
        if call.is_failing(item.subscription_id):
            return
        payload = item.payload
        subscription = store.get_by_key(item.queue, item.subscription_id)
        # The subscriber as it is now: deleted, expired or unconfirmed since
        # means there is nobody to deliver to any more.
        wanted = subscription is not None and (
            subscription.confirmed or not settings.require_confirmation
            or payload.get("Message_Type") != payloads.NOTIFICATION)
        if wanted:
            deliver(Delivery(subscription, payload, item.policy,
                             attempts=item.attempts, last_error=item.last_error),
                    settings, call)
        store.drop_pending(item)
    except Exception:  # it stays pending: the next run tries again after the lease
        log.exception("pending delivery %s of subscription %s failed", item.key,
                      item.subscription_id)

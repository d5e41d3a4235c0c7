"""The messages table's stream: new messages go to their subscribers.

Each new message in a batch of stream records (an INSERT of an "m#" item
that was posted, not moved there from a dead-letter source) goes to every
live subscription of its queue, only the confirmed ones when confirmation is
required. Deliveries run in a thread pool; those that cannot start before
the call's time runs out, and those of a subscriber that failed in this
call, are saved as pending for the retry worker: no subscriber holds up a
shard.

The answer is Lambda's partial batch response: the records whose deliveries
could not be arranged (a record that cannot be read, or storage failing),
which Lambda retries from the earliest on, a bounded number of times. The
records after one that failed are delivered again then: delivery is at
least once.
"""
import contextvars
import logging
from concurrent.futures import ThreadPoolExecutor

from chalicelib import clock
from chalicelib.notify import payloads
from chalicelib.notify import policy as retry_policy
from chalicelib.notify.delivery import Call, Delivery, deliver
from chalicelib.storage import queues as queue_store
from chalicelib.storage import subscriptions as store
from chalicelib.storage.messages import posted_in

log = logging.getLogger("zaqar.notify")


def notification(message, metadata):
    # Zaqar names the delay only on queues that have delays.
    delay = message.delay if metadata.get("_default_message_delay") else None
    return payloads.notification(message.queue, message.body, message.ttl, delay)


class Targets:
    """Per queue, once per batch: its live subscriptions and its metadata."""

    def __init__(self, settings):
        self.settings = settings
        self.loaded = {}

    def __call__(self, pq):
        if pq not in self.loaded:
            try:
                self.loaded[pq] = self._load(pq)
            except Exception as failure:  # remembered: each record of the queue fails
                self.loaded[pq] = failure
        if isinstance(self.loaded[pq], Exception):
            raise self.loaded[pq]
        return self.loaded[pq]

    def _load(self, pq):
        subscriptions = store.list_live(pq)
        if self.settings.require_confirmation:
            subscriptions = [s for s in subscriptions if s.confirmed]
        project, queue = pq.rsplit("/", 1)
        metadata = queue_store.get_metadata(project, queue) if subscriptions else None
        return subscriptions, metadata or {}


def handle(records, deadline_ms, settings):
    """Deliver the new messages among `records` (as Lambda passes them);
    returns the partial batch response."""
    targets, deliveries, failed = Targets(settings), [], set()
    for record in records:
        sequence = record["dynamodb"]["SequenceNumber"]
        try:
            message = posted_in(record)
            if message is None or message.expires <= clock.now_ms():
                continue
            subscriptions, metadata = targets(message.pq)
            if not subscriptions:
                continue
            payload = notification(message, metadata)
        except Exception:
            log.exception("stream record %s: cannot arrange its deliveries", sequence)
            failed.add(sequence)
            continue
        deliveries += [(sequence, Delivery(subscription, payload,
                                           retry_policy.effective(subscription.options,
                                                                  metadata)))
                       for subscription in subscriptions]
    if deliveries:
        call = Call(deadline_ms)
        with ThreadPoolExecutor(settings.max_notifier_workers,
                                thread_name_prefix="notify-stream") as pool:
            # In a copy of this context each: their failures count for this call.
            running = [(sequence, pool.submit(contextvars.copy_context().run, deliver,
                                              delivery, settings, call))
                       for sequence, delivery in deliveries]
        for sequence, future in running:
            if future.exception() is not None:
                log.error("stream record %s: a delivery failed", sequence,
                          exc_info=future.exception())
                failed.add(sequence)
    return {"batchItemFailures": [{"itemIdentifier": sequence}
                                  for sequence in sorted(failed, key=int)]}

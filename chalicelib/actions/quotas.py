"""The stage's quotas on what one project keeps, which bound the operator's
bill: queues per project, messages per queue, subscriptions per queue (0: no
quota). A request that would pass one is refused with 403 "Quota exceeded"
naming it, and changes nothing.

Each check reads what storage keeps anyway, at a cost bounded by the quota,
never by a queue's depth, and writes nothing:

* queues: the project's queue count, only when a queue is about to be made;
* messages: the queue's total as its stats count it (storage.stats: one
  query of the queue's state and stats items per post). Posts count as soon
  as they return; deletions only once the stream is applied (about a
  second; on AWS up to the stats handler's 5 s batching window and a
  second), so a queue just emptied may be refused a little early. Expired
  messages count until removed, as in the stats;
* subscriptions: a page of at most the quota of the queue's live ones.

Concurrent requests may each see room for one more: a quota can be passed
by what the requests made at the same moment add.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.actions import storage
from chalicelib.errors import QuotaExceeded

if TYPE_CHECKING:
    from chalicelib.storage.base import QueueFacts
    from chalicelib.validation import Context


def check_new_queue(ctx: Context) -> None:
    """Before a queue is made for the project."""
    limit = ctx.settings.max_queues_per_project
    if limit and storage(ctx).queues.count(ctx.project) >= limit:
        raise QuotaExceeded(f"Project {ctx.project} already has the most queues this "
                            f"service allows a project (max_queues_per_project: {limit}).")


def check_new_messages(ctx: Context, queue_name: str, adding: int,
                       facts: QueueFacts | None) -> None:
    """Before `adding` messages are posted to the queue (None: not made yet)."""
    limit = ctx.settings.max_messages_per_queue
    if not limit:
        return
    held = 0 if facts is None else storage(ctx).stats.message_total(
        ctx.project, queue_name, facts.floor)
    if held + adding > limit:
        raise QuotaExceeded(f"Queue {queue_name} holds {held} messages; {adding} more would "
                            f"pass the most it may hold (max_messages_per_queue: {limit}).")


def check_new_subscription(ctx: Context, queue_name: str, subscriber: str) -> None:
    """Before the subscriber is subscribed to the queue (a subscriber
    subscribed already is no new subscription)."""
    limit = ctx.settings.max_subscriptions_per_queue
    if not limit:
        return
    live = storage(ctx).subscriptions.list_page(ctx.project, queue_name, limit=limit)
    if len(live) >= limit and all(found.subscriber != subscriber for found in live):
        raise QuotaExceeded(f"Queue {queue_name} has the most subscriptions this service "
                            f"allows a queue (max_subscriptions_per_queue: {limit}).")

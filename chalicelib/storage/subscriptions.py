"""Subscriptions, and deliveries waiting for another attempt.

Under a queue's partition key (`project/queue`) in the subscriptions table:

  sk "s#<id>"      a subscription. Ids are UUIDs that begin with their
                   creation time (version 7), so a Query lists subscriptions
                   in creation order, and the list marker is the last id.
  sk "u#<digest>"  a subscriber URI's hold on the queue: it names the
                   subscription with that subscriber, and expires with it.

Both are written in one transaction whenever a subscriber or an expiry
changes, so two creates racing with one subscriber make one subscription.

Deliveries waiting for a retry live in a few partitions of their own,
"~retry/<n>/" (a queue's key never ends with "/"), sorted by due time, so
the retry worker finds what is due with one Query per partition.

Reads skip what has expired: DynamoDB's TTL deletes lazily.
"""
from __future__ import annotations

import hashlib
import json
import random
import uuid

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib import clock
from chalicelib.errors import ServiceUnavailable
from chalicelib.storage.base import Pending, Subscription
from chalicelib.storage.errors import SubscriberTaken
from chalicelib.storage.models import SubscriptionRecord, queue_key
from chalicelib.storage.retry import condition_failed, retrying

SUBSCRIPTION_PREFIX = "s#"
SUBSCRIBER_PREFIX = "u#"
RETRY_PARTITIONS = 4  # spreads retry writes when a popular webhook is down
PENDING_KEEP_S = 7 * 86400  # TTL backstop, past a pending delivery's due time
RACE_ATTEMPTS = 5  # a create or update that keeps losing races gives up (503)


class SubscriberKey(Model):
    """A subscriber URI's hold on a queue (sk "u#<digest>")."""
    Meta = SubscriptionRecord.Meta
    pq = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    subscription_id = UnicodeAttribute(attr_name="i")
    expires = NumberAttribute(attr_name="e")  # epoch ms, as its subscription's
    expires_at = NumberAttribute(attr_name="x")  # epoch s: TTL backstop


class PendingDelivery(Model):
    """A delivery that failed and waits for its next attempt."""
    Meta = SubscriptionRecord.Meta
    pq = UnicodeAttribute(hash_key=True)  # "~retry/<n>/"
    sk = UnicodeAttribute(range_key=True)  # "<due ms, 12 hex>#<random>"
    queue = UnicodeAttribute(attr_name="q")  # the queue's partition key
    subscription_id = UnicodeAttribute(attr_name="i")
    payload = UnicodeAttribute(attr_name="b")  # JSON text
    policy = UnicodeAttribute(attr_name="rp")  # JSON: the retry policy that applies
    attempts = NumberAttribute(attr_name="n")  # made so far
    last_error = UnicodeAttribute(attr_name="le", null=True)
    lease = NumberAttribute(attr_name="l", null=True)  # ms; a worker has it until then
    expires_at = NumberAttribute(attr_name="x")



def _to_pending(item):
    return Pending(key=(item.pq, item.sk), due=int(item.sk.split("#")[0], 16),
                   queue=item.queue, subscription_id=item.subscription_id,
                   payload=json.loads(item.payload), policy=json.loads(item.policy),
                   attempts=int(item.attempts), last_error=item.last_error)


ID_LENGTH = 36  # str(uuid.UUID(...))


def new_subscription_id(now: int) -> str:
    """A version-7 UUID: 48 bits of milliseconds, then random bits."""
    value = ((now << 80) | (0x7 << 76) | (random.getrandbits(12) << 64)
             | (0b10 << 62) | random.getrandbits(62))
    return str(uuid.UUID(int=value))


def subscriber_key(subscriber: str) -> str:
    return SUBSCRIBER_PREFIX + hashlib.sha256(subscriber.encode()).hexdigest()[:32]


def _to_subscription(record):
    return Subscription(
        id=record.subscription_id, queue=record.pq, subscriber=record.subscriber,
        ttl=int(record.ttl), expires=int(record.expires),
        options=json.loads(record.options), confirmed=bool(record.confirmed),
        failures=int(record.failures or 0),
        last_error=json.loads(record.last_error) if record.last_error else None)


def _transact(write):
    """Run write(transaction) as one TransactWriteItems. Returns None if it
    went through, else the cancellation codes, one per item in order
    ("ConditionalCheckFailed", or None for an item that passed)."""
    # The table's own connection: a new one would make a new botocore client
    # (about 0.3 s) each time.
    connection = SubscriptionRecord._get_connection().connection

    def attempt():
        with TransactWrite(connection=connection) as transaction:
            write(transaction)
    try:
        retrying(attempt)
    except TransactWriteError as error:
        codes = [reason.code if reason else None
                 for reason in error.cancellation_reasons or []]
        if "ConditionalCheckFailed" not in codes:
            raise
        return codes
    return None


# -- reading ----------------------------------------------------------------

def _is_id(text):
    """Whether `text` could be a subscription id (a UUID as str() writes
    it). Anything else names none, and must not reach DynamoDB, which
    refuses a key over 1,024 bytes as if it were our fault."""
    try:
        return str(uuid.UUID(text)) == text
    except (TypeError, ValueError):
        return False


def _record(pq, subscription_id):
    if not _is_id(subscription_id):
        return None
    try:
        return retrying(SubscriptionRecord.get, pq, SUBSCRIPTION_PREFIX + subscription_id,
                        consistent_read=True)
    except DoesNotExist:
        return None


def get(project: str, queue: str, subscription_id: str) -> Subscription | None:
    """The live subscription, or None."""
    return get_by_key(queue_key(project, queue), subscription_id)


def get_by_key(pq: str, subscription_id: str) -> Subscription | None:
    record = _record(pq, subscription_id)
    if record is None or record.expires <= clock.now_ms():
        return None
    return _to_subscription(record)


def list_page(project: str, queue: str, marker: str | None = None,
              limit: int = 10) -> list[Subscription]:
    """Up to `limit` live subscriptions after the id `marker`, in id order."""
    pq = queue_key(project, queue)
    # Ids have ID_LENGTH characters, so a longer marker sorts among them where
    # its first ID_LENGTH do (and the key stays within DynamoDB's limit).
    low = SUBSCRIPTION_PREFIX + (marker or "")[:ID_LENGTH]
    high = SUBSCRIPTION_PREFIX + "~"
    if low > high:  # ids are hex and dashes: nothing sorts after "~"
        return []

    def read_page():
        now, found = clock.now_ms(), []
        for record in SubscriptionRecord.query(
                pq, SubscriptionRecord.sk.between(low, high), page_size=limit + 1):
            if record.sk != low and record.expires > now:
                found.append(_to_subscription(record))
                if len(found) == limit:
                    break
        return found
    return retrying(read_page)


def list_live(pq: str) -> list[Subscription]:
    """Every live subscription of the queue (for delivery)."""
    def read_all():
        now = clock.now_ms()
        return [_to_subscription(record) for record in SubscriptionRecord.query(
                    pq, SubscriptionRecord.sk.startswith(SUBSCRIPTION_PREFIX))
                if record.expires > now]
    return retrying(read_all)


# -- writing ----------------------------------------------------------------

def _holder(pq, subscriber):
    """The live subscription holding `subscriber` on the queue, or None."""
    try:
        key = retrying(SubscriberKey.get, pq, subscriber_key(subscriber),
                       consistent_read=True)
    except DoesNotExist:
        return None
    return get_by_key(pq, key.subscription_id)


def create(project: str, queue: str, subscriber: str, ttl: int,
           options: dict) -> tuple[Subscription, bool]:
    """(subscription, True) when created; (the existing one, False) when the
    subscriber already has a live subscription on the queue. New
    subscriptions are unconfirmed."""
    pq = queue_key(project, queue)
    for _ in range(RACE_ATTEMPTS):
        now = clock.now_ms()
        subscription_id = new_subscription_id(now)
        expires = now + ttl * 1000
        record = SubscriptionRecord(
            pq, SUBSCRIPTION_PREFIX + subscription_id, subscription_id=subscription_id,
            subscriber=subscriber, ttl=ttl, created=now, expires=expires,
            expires_at=expires // 1000 + 1, options=json.dumps(options), confirmed=False,
            failures=0)
        key = SubscriberKey(pq, subscriber_key(subscriber), subscription_id=subscription_id,
                            expires=expires, expires_at=expires // 1000 + 1)

        def write(transaction):
            transaction.save(record, condition=SubscriptionRecord.sk.does_not_exist())
            transaction.save(key, condition=SubscriberKey.sk.does_not_exist()
                             | (SubscriberKey.expires <= now))
        if _transact(write) is None:
            return _to_subscription(record), True
        existing = _holder(pq, subscriber)
        if existing is not None:
            return existing, False
        # Its holder expired or went away in between: try again.
    raise ServiceUnavailable("Subscriptions of this queue are changing too fast.")


def update(project: str, queue: str, subscription_id: str, subscriber: str | None = None,
           ttl: int | None = None, options: dict | None = None) -> Subscription | None:
    """Change a live subscription; returns it changed, or None if there is
    none. A new ttl restarts the expiry from now. A new subscriber makes the
    subscription unconfirmed (the new one has confirmed nothing), and raises
    SubscriberTaken if another subscription of the queue has it."""
    pq = queue_key(project, queue)
    for _ in range(RACE_ATTEMPTS):
        record = _record(pq, subscription_id)
        now = clock.now_ms()
        if record is None or record.expires <= now:
            return None
        read = SubscriptionRecord(pq, record.sk)
        # Conditioned on what was read, so the hold moved below is this one's.
        condition = ((SubscriptionRecord.subscriber == record.subscriber)
                     & (SubscriptionRecord.expires == record.expires))
        old_hold = SubscriberKey(pq, subscriber_key(record.subscriber))
        moved = subscriber is not None and subscriber != record.subscriber
        actions = []
        if moved:
            record.subscriber, record.confirmed = subscriber, False
            actions += [SubscriptionRecord.subscriber.set(subscriber),
                        SubscriptionRecord.confirmed.set(False)]
        if ttl is not None:
            record.ttl, record.expires = ttl, now + ttl * 1000
            record.expires_at = record.expires // 1000 + 1
            actions += [SubscriptionRecord.ttl.set(ttl),
                        SubscriptionRecord.expires.set(record.expires),
                        SubscriptionRecord.expires_at.set(record.expires_at)]
        if options is not None:
            record.options = json.dumps(options)
            actions.append(SubscriptionRecord.options.set(record.options))
        if not actions:
            return _to_subscription(record)
        hold = SubscriberKey(pq, subscriber_key(record.subscriber),
                             subscription_id=subscription_id, expires=record.expires,
                             expires_at=record.expires_at)

        def write(transaction):
            transaction.update(read, actions=actions, condition=condition)
            if moved:
                transaction.save(hold, condition=SubscriberKey.sk.does_not_exist()
                                 | (SubscriberKey.expires <= now))
                transaction.delete(old_hold,
                                   condition=SubscriberKey.subscription_id == subscription_id)
            elif ttl is not None:
                transaction.save(hold)  # the hold expires with its subscription
        codes = _transact(write)
        if codes is None:
            return _to_subscription(record)
        if moved and codes[1] == "ConditionalCheckFailed":
            raise SubscriberTaken(subscriber)
        # It changed or went away since it was read: read it again.
    raise ServiceUnavailable("This subscription is changing too fast.")


def confirm(project: str, queue: str, subscription_id: str,
            confirmed: bool) -> Subscription | None:
    """Set whether the live subscription is confirmed; returns it, or None if
    there is none."""
    if not _is_id(subscription_id):
        return None
    record = SubscriptionRecord(queue_key(project, queue),
                                SUBSCRIPTION_PREFIX + subscription_id)
    try:
        retrying(record.update, actions=[SubscriptionRecord.confirmed.set(confirmed)],
                 condition=SubscriptionRecord.expires > clock.now_ms())
    except UpdateError as error:
        if condition_failed(error):
            return None
        raise
    return _to_subscription(record)


def delete(project: str, queue: str, subscription_id: str) -> None:
    """Delete the subscription, and its subscriber's hold if it still has it.
    A missing subscription is not an error."""
    pq = queue_key(project, queue)
    record = _record(pq, subscription_id)
    if record is None:
        return
    hold = SubscriberKey(pq, subscriber_key(record.subscriber))

    def write(transaction):
        transaction.delete(SubscriptionRecord(pq, record.sk))
        transaction.delete(hold, condition=SubscriberKey.subscription_id == subscription_id)
    if _transact(write) is not None:  # the hold is another's, or gone
        retrying(SubscriptionRecord(pq, record.sk).delete)


def purge(project: str, queue: str) -> None:
    """Delete every subscription of the queue (a purge of "subscriptions")."""
    pq = queue_key(project, queue)

    def delete_all():
        with SubscriptionRecord.batch_write() as batch:
            # Subscriptions and subscriber holds alike.
            for record in SubscriptionRecord.query(pq, attributes_to_get=["pq", "sk"]):
                batch.delete(SubscriptionRecord(pq, record.sk))
    retrying(delete_all)


def record_failure(pq: str, subscription_id: str, description: str) -> None:
    """Count a delivery that failed for good, and keep it as the last error."""
    record = SubscriptionRecord(pq, SUBSCRIPTION_PREFIX + subscription_id)
    error = json.dumps({"time": clock.now_ms(), "description": description})
    try:
        retrying(record.update, actions=[SubscriptionRecord.failures.add(1),
                                         SubscriptionRecord.last_error.set(error)],
                 condition=SubscriptionRecord.sk.exists())
    except UpdateError as failed:
        if not condition_failed(failed):  # else: the subscription is gone
            raise


# -- pending deliveries -----------------------------------------------------

def retry_partition(number: int) -> str:
    return f"~retry/{number}/"


def save_pending(queue: str, subscription_id: str, payload: dict, policy: dict,
                 attempts: int, last_error: str | None, due: int) -> None:
    item = PendingDelivery(
        retry_partition(random.randrange(RETRY_PARTITIONS)),
        f"{due:012x}#{random.getrandbits(32):08x}", queue=queue,
        subscription_id=subscription_id, payload=json.dumps(payload),
        policy=json.dumps(policy), attempts=attempts, last_error=last_error,
        expires_at=due // 1000 + PENDING_KEEP_S)
    retrying(item.save)


def pending_until(moment: int, limit: int = 100) -> list[Pending]:
    """Pending deliveries due by `moment` (epoch ms) that no worker holds,
    earliest first, up to `limit` per partition."""
    def read():
        now, found = clock.now_ms(), []
        for number in range(RETRY_PARTITIONS):
            found += [item for item in PendingDelivery.query(
                          retry_partition(number), PendingDelivery.sk <= f"{moment:012x}~",
                          limit=limit, page_size=limit)
                      if item.lease is None or item.lease <= now]
        return [_to_pending(item) for item in sorted(found, key=lambda item: item.sk)]
    return retrying(read)


def take_pending(pending: Pending, lease_ms: int) -> bool:
    """Hold the delivery for `lease_ms`; False if another worker holds it. A
    worker that dies holding it leaves it to the next one after the lease."""
    now = clock.now_ms()
    try:
        retrying(PendingDelivery(*pending.key).update,
                 actions=[PendingDelivery.lease.set(now + lease_ms)],
                 condition=PendingDelivery.sk.exists()
                 & (PendingDelivery.lease.does_not_exist() | (PendingDelivery.lease <= now)))
    except UpdateError as error:
        if condition_failed(error):
            return False
        raise
    return True


def drop_pending(pending: Pending) -> None:
    retrying(PendingDelivery(*pending.key).delete)

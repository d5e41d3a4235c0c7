"""Messages: post, list, get, delete.

A message's position comes from a per-queue counter (one atomic ADD reserves a
whole batch), so positions give FIFO order for a single producer, serve as
opaque markers, and are the message id (16 hex digits). The counter starts at
a random base per queue, so an id of one queue names nothing in another.

The counter also keeps runs: consecutive positions one client reserved. The
latest run is on the queue's state, earlier ones in small run items, so that
a listing that leaves out a client's own messages (echo off) passes them
without reading them (see listing.py).

Reads filter out expired messages themselves: DynamoDB's TTL deletes lazily.
How claims find free messages without reading held ones is in claims.py.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from typing import TYPE_CHECKING

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib import clock
from chalicelib.errors import ServiceUnavailable
from chalicelib.storage import queues as queue_store
from chalicelib.storage.base import Message, Posted
from chalicelib.storage.errors import StaleQueue, is_backend_failure
from chalicelib.storage.models import (
    CLAIM_PREFIX,
    MESSAGE_PREFIX,
    RUN_PREFIX,
    STATE_KEY,
    STATS_KEY,
    SWEEP_JOBS_KEY,
    ClaimRecord,
    MessageRecord,
    QueueState,
    RunRecord,
    SweepJob,
    queue_key,
)
from chalicelib.storage.retry import (
    ATTEMPTS,
    backoff,
    condition_failed,
    error_code,
    is_transient,
    retrying,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

# A post that has not finished writing this long after reserving its
# positions gives up (and removes what it wrote): claimers rely on every post
# landing within POST_WINDOW_MS (see claims.py), well inside Lambda's timeout.
POST_ABORT_MS = 10_000
# A post that gives up undoes what it wrote: the client may safely try again.
TOO_LATE = ("The messages could not all be written in time, so none was kept. "
            "Try again, or post fewer at a time.")
BATCH_WRITE_MAX = 25
RANDOM_BASE_BITS = 52
log = logging.getLogger("zaqar.messages")


def position_key(position: int) -> str:
    return f"{MESSAGE_PREFIX}{position:016x}"


def hex_number(text: object, digits: int) -> int | None:
    """The number `text` writes in exactly `digits` hex digits, else None."""
    if not isinstance(text, str) or len(text) != digits:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def position_of(message_id: object) -> int | None:
    """The position a message id names, or None for a malformed id."""
    return hex_number(message_id, 16)


def message_id_of(position: int) -> str:
    return f"{position:016x}"


def checksum(body_text: str) -> str:
    return "MD5:" + hashlib.md5(body_text.encode()).hexdigest()


def posted_in(stream_record: dict) -> Posted | None:
    """The message a stream record shows posted, or None for any other
    change (a message moved to a dead-letter queue keeps its claim count,
    and is no post)."""
    if stream_record.get("eventName") != "INSERT":
        return None
    image = stream_record["dynamodb"].get("NewImage") or {}
    if not image.get("sk", {}).get("S", "").startswith(MESSAGE_PREFIX):
        return None
    record = MessageRecord.from_raw_data(image)
    if record.claim_count:
        return None
    delay = 0
    if record.claim_expires and not record.claim_id:  # posted held: a delay
        delay = (int(record.claim_expires) - int(record.created)) // 1000
    return Posted(pq=record.pq, queue=record.pq.rsplit("/", 1)[1],
                  body=json.loads(record.body), ttl=int(record.ttl),
                  expires=int(record.expires), delay=delay)


def is_free(record: MessageRecord, now: int, floor: int = 0,
            unfinished: frozenset[str] = frozenset()) -> bool:
    """Neither held (by a claim or a delay) nor expired, in this incarnation,
    and not part of a post that has not committed."""
    return (record.expires > now and (record.claim_expires is None
                                      or record.claim_expires <= now)
            and position_of(record.message_id) >= floor
            and record.batch_token not in unfinished)


def to_message(record: MessageRecord, now: int) -> Message:
    held = record.claim_id if (record.claim_expires or 0) > now else None
    return Message(id=record.message_id, body=json.loads(record.body),
                   ttl=int(record.ttl), age=max(0, (now - record.created) // 1000),
                   claim_id=held, claim_count=int(record.claim_count or 0),
                   checksum=record.checksum, client_id=record.client_id,
                   created=int(record.created))


# -- queue incarnation ------------------------------------------------------

def queue_floor(project: str, queue: str) -> int | None:
    """The floor of the queue's current incarnation, or None if it does not
    exist."""
    metadata, floor = queue_store.get_with_floor(project, queue)
    return None if metadata is None else floor


# -- post -------------------------------------------------------------------

def check_version(state: QueueState, version: int | None) -> None:
    """StaleQueue unless the queue, as its state shows, is at `version`
    (None: nothing to check). See queues.py."""
    if version is not None and int(state.version or 0) != version:
        raise StaleQueue()


def hold_key(kind: str, ends: int) -> str:
    """The key of QueueState.holds counting holds of `kind` ("c" claim, "d"
    delay) that end at `ends` (epoch ms): by the minute they end in."""
    return f"{kind}{ends // HOLD_BUCKET_MS}"


HOLD_BUCKET_MS = 60_000


def add_holds(holds: dict[str, int]) -> list:
    """Update actions adding these counts to QueueState.holds (negative ones
    take away)."""
    return [QueueState.holds[key].set((QueueState.holds[key] | 0) + count)
            for key, count in holds.items() if count]


def update_creating_maps(state: QueueState, actions: list, condition=None) -> None:
    """state.update, making the state's maps first if the update needs one
    that does not exist yet (DynamoDB sets no key of a missing map)."""
    try:
        retrying(state.update, actions=actions, condition=condition)
    except UpdateError as exc:
        if error_code(exc) != "ValidationException":
            raise
        retrying(state.update, actions=[QueueState.pending.set(QueueState.pending | {}),
                                        QueueState.holds.set(QueueState.holds | {}),
                                        QueueState.done.set(QueueState.done | {})])
        retrying(state.update, actions=actions, condition=condition)


def reserve_positions(pq: str, count: int, batch_token: str | None = None,
                      deadline: int | None = None, version: int | None = None,
                      holds: dict[str, int] | None = None) -> int:
    """Reserve `count` consecutive positions for messages of no known client
    (see reserve_run); returns the first. The run it may close is left
    without its item: its positions are read, never passed over."""
    return reserve_run(pq, count, None, batch_token, deadline, version, holds)[0]


def reserve_run(pq: str, count: int, client: str | None, batch_token: str | None = None,
                deadline: int | None = None, version: int | None = None,
                holds: dict[str, int] | None = None) -> tuple[int, RunRecord | None]:
    """Reserve `count` consecutive positions for `client`'s messages; returns
    the first, and the item of the run this reservation closed, if it closed
    one, for the caller to write.

    With a batch token, the same write lists the batch as pending until
    `deadline`, so readers hide its messages until the post commits. Given
    the queue's `version`, only while the queue is at it (else StaleQueue).
    The same write counts the messages for stats, and their delays (`holds`).

    The state keeps the queue's latest run exact (QueueState.run_client): a
    reservation of that run's client extends it, conditioned on the client
    being the run's; any other reservation starts a run, and its answer
    shows the run it closed. So a client that keeps posting pays nothing
    more, and a change of client costs one failed write and one small item
    (or, when two reservations of one client raced, one write joining them).
    A run item that is never written costs only reads: listings read the
    positions no run item covers.
    """
    base = random.getrandbits(RANDOM_BASE_BITS)
    state = QueueState(pq, STATE_KEY)
    # The first post of a queue also starts the claim cursor at its first
    # position, so claimers do not start with a gap below it.
    actions = [QueueState.counter.set((QueueState.counter | base) + count),
               QueueState.cursor.set(QueueState.cursor | base + 1),
               QueueState.posted.add(count)] + add_holds(holds or {})
    if batch_token is not None:
        actions.append(QueueState.pending[batch_token].set(deadline))
    condition = None
    if version is not None:  # 0: a queue whose version was never raised
        condition = (QueueState.version == version if version
                     else QueueState.version.does_not_exist())
    if client is not None:
        # The first reservation of a queue starts its first run here too (at
        # base + 1, as the counter does), so first posts racing each other
        # do not each start one.
        same_run = (QueueState.run_client == client) | QueueState.counter.does_not_exist()
        try:
            update_creating_maps(
                state, actions + [QueueState.run_client.set(QueueState.run_client | client),
                                  QueueState.run_start.set(QueueState.run_start | base + 1),
                                  QueueState.closed_client.remove(),
                                  QueueState.closed_start.remove()],
                same_run if condition is None else condition & same_run)
            return int(state.counter) - count + 1, None
        except UpdateError as exc:
            if not condition_failed(exc):
                raise
    # Every value on the right is the state's before this write.
    actions += [QueueState.closed_client.set(QueueState.run_client | ""),
                QueueState.closed_start.set(QueueState.run_start | 0),
                QueueState.run_client.set(client or ""),
                QueueState.run_start.set((QueueState.counter | base) + 1)]
    try:
        update_creating_maps(state, actions, condition)
    except UpdateError as exc:
        if version is not None and condition_failed(exc):
            raise StaleQueue() from None
        raise
    first = int(state.counter) - count + 1
    if not (state.closed_client and state.closed_start and int(state.closed_start) < first):
        return first, None
    closed_start = int(state.closed_start)
    if state.closed_client == client and _join_runs(state, client, closed_start, first):
        return first, None
    return first, RunRecord(pq, run_key(first - 1), start=closed_start,
                            client_id=state.closed_client,
                            expires_at=clock.now_ms() // 1000 + RUN_KEEP_S)


def _join_runs(state: QueueState, client: str, closed_start: int, first: int) -> bool:
    """Make the run this client's reservation started at `first` go back to
    `closed_start`, where its run just closed started: two of its
    reservations raced (posts just after another client's, or one retried
    after a lost answer). Only while the run is still the one it started;
    False if not."""
    try:
        retrying(state.update, actions=[QueueState.run_start.set(closed_start)],
                 condition=(QueueState.run_client == client) & (QueueState.run_start == first))
    except UpdateError as exc:
        if not condition_failed(exc):
            raise
        return False
    return True


def run_key(end: int) -> str:
    return f"{RUN_PREFIX}{end:016x}"


# A run item outlives its messages: the longest ttl is 14 days, and a claim
# stretches a message's life by its ttl and grace, at most a day.
RUN_KEEP_S = 15 * 86_400


def load_state(pq: str) -> QueueState:
    try:
        return retrying(QueueState.get, pq, STATE_KEY, consistent_read=True)
    except DoesNotExist:
        return QueueState(pq, STATE_KEY)


def unfinished_batches(state: QueueState,
                       now: int) -> tuple[frozenset[str], frozenset[str]]:
    """(tokens of posts still writing, tokens of all unfinished posts). A post
    past its deadline never committed: its messages stay hidden for good."""
    pending = state.pending.as_dict() if state.pending is not None else {}
    writing = {token for token, deadline in pending.items() if deadline > now}
    return frozenset(writing), frozenset(pending)


def commit_batch(pq: str, batch_token: str, first: int | None = None) -> bool:
    """Drop the batch from the pending ones: its messages show from now on.

    Given the batch's `first` position, only while the claim cursor is not
    past it; False if it is. A claimer moves the cursor over a post that
    outlived its deadline as if it had died (see claims.py), and messages
    shown behind the cursor would never be claimed.
    """
    condition = None
    if first is not None:
        # A token already gone is this commit's own first attempt, landed unseen.
        condition = (QueueState.cursor.does_not_exist() | (QueueState.cursor <= first)
                     | QueueState.pending[batch_token].does_not_exist())
    try:
        retrying(QueueState(pq, STATE_KEY).update,
                 actions=[QueueState.pending[batch_token].remove()], condition=condition)
    except UpdateError as exc:
        if first is None or not condition_failed(exc):
            raise
        return False
    return True


def forget_abandoned_batches(pq: str, now: int, older_than_ms: int) -> None:
    """Drop pending entries of posts that died long enough ago that none of
    their messages can still be alive (the state item is read on every claim)."""
    state = load_state(pq)
    pending = state.pending.as_dict() if state.pending is not None else {}
    for token, deadline in pending.items():
        if deadline < now - older_than_ms:
            commit_batch(pq, token)


def batch_write(items: Iterable[MessageRecord | ClaimRecord | RunRecord] = (),
                deletes: Iterable[MessageRecord | ClaimRecord] = ()) -> None:
    """Put and delete items with BatchWriteItem calls of at most 25.

    Items DynamoDB leaves unprocessed (throttling) are sent again with backoff;
    ServiceUnavailable if they keep coming back.
    """
    connection = MessageRecord._get_connection()
    requests = ([("put", item.serialize()) for item in items]
                + [("delete", item._get_keys()) for item in deletes])
    for start in range(0, len(requests), BATCH_WRITE_MAX):
        pending = requests[start:start + BATCH_WRITE_MAX]
        for attempt in range(ATTEMPTS):
            answer = retrying(
                connection.batch_write_item,
                put_items=[item for kind, item in pending if kind == "put"],
                delete_items=[key for kind, key in pending if kind == "delete"])
            unprocessed = (answer or {}).get("UnprocessedItems", {}).get(
                MessageRecord.Meta.table_name, [])
            if not unprocessed:
                break
            pending = [("put", request["PutRequest"]["Item"]) if "PutRequest" in request
                       else ("delete", request["DeleteRequest"]["Key"])
                       for request in unprocessed]
            time.sleep(backoff(attempt))
        else:
            raise ServiceUnavailable()


def post(project: str, queue: str, messages: list[dict], client_id: str,
         enable_checksum: bool = False, version: int | None = None) -> list[str]:
    """Store a batch of messages, all or nothing; returns their ids in order.

    `messages` are dicts with body, ttl (s) and delay (s). Delayed messages are
    held until their delay ends, and one timer per post wakes claimers then.
    The messages of a multi-message post carry a batch token that the queue's
    state lists as pending while they are written, one BatchWriteItem per 25:
    readers hide them until the post commits, so a post that fails or dies
    half-way never shows part of its batch. Given the queue's `version`, the
    reservation is the check (StaleQueue, nothing written).
    """
    pq = queue_key(project, queue)
    batch_token = f"{random.getrandbits(32):08x}" if len(messages) > 1 else None
    started = clock.now_ms()
    deadline = started + POST_ABORT_MS
    # Messages date from `started`, so the reservation can count their delays.
    delays = {}
    for message in messages:
        if message.get("delay"):
            key = hold_key("d", started + message["delay"] * 1000)
            delays[key] = delays.get(key, 0) + 1
    first, closed_run = retrying(reserve_run, pq, len(messages), client_id, batch_token,
                                 deadline, version, delays)
    records, delayed = [], {}
    for offset, message in enumerate(messages):
        position = first + offset
        body_text = json.dumps(message["body"])
        expires = started + message["ttl"] * 1000
        record = MessageRecord(
            pq, position_key(position), message_id=message_id_of(position),
            body=body_text, ttl=message["ttl"], created=started,
            expires=expires, expires_at=expires // 1000 + 1, client_id=client_id,
            claim_count=0, batch_token=batch_token,
            checksum=checksum(body_text) if enable_checksum else None)
        if message.get("delay"):
            record.claim_expires = started + message["delay"] * 1000
            delayed.setdefault(record.claim_expires, []).append(position)
        records.append(record)
    timers = [delay_timer(pq, due, positions) for due, positions in delayed.items()]
    try:
        # The closed run's item tells of earlier positions: a failed post
        # does not take it back.
        write_within(records + timers + ([closed_run] if closed_run else []), deadline)
        if batch_token is not None and not commit_batch(pq, batch_token, first):
            raise ServiceUnavailable(TOO_LATE)
    except Exception:
        # Take back whatever landed, so the client's retry leaves no duplicate
        # (if this fails too, the batch stays hidden: it never committed).
        # Stats hear of it first; should that fail, the take-back goes on
        # regardless, and stats count the post's messages (see stats.py).
        try:
            void_positions(pq, first, len(messages), delays)
        except Exception:
            log.exception("stats of %s still count a failed post", pq)
        batch_write(deletes=records + timers)
        if batch_token is not None:
            commit_batch(pq, batch_token)  # nothing of it is left to hide
        raise
    return [record.message_id for record in records]


def void_positions(pq: str, first: int, count: int, delays: dict[str, int]) -> None:
    """Tell stats that the positions a failed post reserved hold nothing: its
    reservation counted them, and the removal of those that landed must not
    count again (see stats.py). Before they are removed, so that the stream
    handler, reading the stats item after a removal, knows."""
    client = MessageRecord._get_connection().connection.client
    retrying(client.update_item, TableName=MessageRecord.Meta.table_name,
             Key={"pq": {"S": pq}, "sk": {"S": STATS_KEY}},
             UpdateExpression="ADD vd :count, fr :range",
             ExpressionAttributeValues={":count": {"N": str(count)},
                                        ":range": {"SS": [f"{first}:{first + count - 1}"]}})
    if delays:
        update_creating_maps(QueueState(pq, STATE_KEY),
                             add_holds({key: -n for key, n in delays.items()}))


def write_within(records: list[MessageRecord | ClaimRecord | RunRecord],
                 deadline: int) -> None:
    for start in range(0, len(records), BATCH_WRITE_MAX):
        if clock.now_ms() > deadline:
            raise ServiceUnavailable(TOO_LATE)
        batch_write(items=records[start:start + BATCH_WRITE_MAX])


def delay_timer(pq: str, due: int, positions: list[int]) -> ClaimRecord:
    return ClaimRecord(pq, f"{CLAIM_PREFIX}{due:012x}{random.getrandbits(32):08x}",
                       positions=positions, is_delay=True,
                       expires_at=due // 1000 + TIMER_KEEP_S)


# Timers and claim records are kept this long past their due time (TTL) so
# that claimers, or the sweeper, handle them first.
TIMER_KEEP_S = 86_400


# -- reading ----------------------------------------------------------------

def get_records(pq: str, positions: Iterable[int],
                consistent: bool = True) -> dict[int, MessageRecord]:
    """The message records at these positions that exist, by position."""
    keys = [(pq, position_key(position)) for position in positions]
    found = retrying(lambda: list(MessageRecord.batch_get(
        keys, consistent_read=consistent)))
    return {position_of(record.message_id): record for record in found}


def scan(pq: str, start: int, consistent: bool = False, page_size: int = 50,
         end: int = 2 ** 64 - 1, attributes: list | None = None) -> Iterator[MessageRecord]:
    """Message records from position `start` on (to `end`), in order (lazy);
    given `attributes`, only those.

    A page that fails transiently is asked for again from the position after
    the last record read, so a throttled page costs a retry, not the request.
    """
    failures = 0
    while True:
        try:
            for record in MessageRecord.query(
                    pq, MessageRecord.sk.between(position_key(start), position_key(end)),
                    consistent_read=consistent, page_size=page_size,
                    attributes_to_get=attributes):
                start = position_of(record.message_id) + 1
                yield record
            return
        except Exception as exc:
            failures += 1
            if not (is_backend_failure(exc) and is_transient(exc)):
                raise
            if failures >= ATTEMPTS:
                raise ServiceUnavailable()
            time.sleep(backoff(failures))


def get(project: str, queue: str, message_id: str) -> Message | None:
    """One live message, or None."""
    found = get_many(project, queue, [message_id])
    return found[0] if found else None


def get_many(project: str, queue: str, message_ids: Iterable[str]) -> list[Message]:
    """The live messages among these ids, in the order asked."""
    floor = queue_floor(project, queue)
    positions = [position_of(message_id) for message_id in message_ids]
    positions = [p for p in dict.fromkeys(positions) if p is not None]
    if floor is None or not positions:
        return []
    now = clock.now_ms()
    pq = queue_key(project, queue)
    records = get_records(pq, positions)
    unfinished = frozenset()
    if any(record.batch_token for record in records.values()):
        _, unfinished = unfinished_batches(load_state(pq), now)
    return [to_message(records[p], now) for p in positions
            if p in records and p >= floor and records[p].expires > now
            and records[p].batch_token not in unfinished]


# -- deleting ---------------------------------------------------------------

def delete_many(project: str, queue: str, message_ids: Iterable[str]) -> None:
    """Delete these messages whatever holds them; unknown ids are skipped."""
    positions = {position_of(message_id) for message_id in message_ids} - {None}
    delete_positions(queue_key(project, queue), positions)


def delete_positions(pq: str, positions: Iterable[int]) -> None:
    batch_write(deletes=[MessageRecord(pq, position_key(position))
                                   for position in positions])


def delete_queue_contents(project: str, queue: str) -> None:
    """Hand what a deleted queue leaves to the sweeper, without waiting on it.

    The leftovers are already invisible: a queue created again under the name
    starts above them (its floor). Only what stats count goes at once. The
    state item (the position counter) is kept, so message ids are never handed
    out twice under one name.
    """
    pq = queue_key(project, queue)
    retrying(SweepJob(SWEEP_JOBS_KEY, pq, deleted=clock.now_ms()).save)
    retrying(MessageRecord(pq, STATS_KEY).delete)
    retrying(QueueState(pq, STATE_KEY).update, actions=[QueueState.holds.remove()])


def purge(project: str, queue: str) -> None:
    """Remove all the queue's messages at once, whatever the depth: the floor
    moves above them and the sweeper deletes them. As SQS's PurgeQueue does
    (and unlike Zaqar's purge, which pops and so spares claimed messages),
    messages under a live claim go too."""
    if queue_store.raise_floor(project, queue):
        delete_queue_contents(project, queue)

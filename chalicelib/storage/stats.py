"""Queue stats from what the engine writes anyway, plus removals from the stream.

Counting on each stats call would read the whole queue, and a counter
written per message would double the hot path's writes. So each count comes
from a write its operation makes anyway, and the one thing no such write
sees, a message going away, from the messages table's stream:

* posted: the post's reservation on the queue's state item adds its
  messages (`posted`); in a queue purged or created again, the positions
  handed out since its floor say the same;
* claimed and delayed: holds are counted on the state item by the minute
  they end, by the claim's own state write (`claims._set_hints`), a
  renewal's and a release's state write, and a delayed post's reservation;
* removed: a stream-triggered function counts each message deleted (by a
  consumer, a pop, the sweeper or TTL) on the queue's stats item (sk "t"),
  and takes a held one out of its minute's holds there.

A stats call reads the state and stats items (one query) and, for oldest and
newest, a few messages at each end: a few reads, whatever the depth or rate.

What stays approximate, and by how much:
* a deletion shows once the stream handler applied it (a second or so on
  AWS; the local runner's trigger period);
* a hold that ends by itself (a claim or delay running out) is counted until
  the end of the minute it ends in (at most 60 s);
* expired messages count as free until the sweeper or TTL removes them
  (Zaqar's MongoDB driver does the same);
* a post still writing counts already; one that fails takes its count back
  (`messages.void_positions`); one whose process dies half-way, or that
  fails while the backend fails that write too, leaves its messages counted
  until the queue is purged (the landed ones until they are removed).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING

from chalicelib import clock
from chalicelib.storage import places, pools
from chalicelib.storage import queues as queue_store
from chalicelib.storage.messages import (
    HOLD_BUCKET_MS,
    hold_key,
    position_key,
    position_of,
    scan,
    to_message,
    unfinished_batches,
)
from chalicelib.storage.models import (
    MESSAGE_PREFIX,
    STATE_KEY,
    STATS_KEY,
    MessageRecord,
    QueueState,
    queue_key,
)
from chalicelib.storage.retry import condition_failed, retrying

if TYPE_CHECKING:
    from chalicelib.storage.base import Message

log = logging.getLogger("zaqar.stats")
# What the stream handler keeps on the stats item: removals ("rm"), removed
# holds by minute ("hc<minute>", "hd<minute>", negative), positions a failed
# post reserved ("vd" and their ranges "fr"), the last record applied ("sq").
REMOVED, VOID, VOID_RANGES, APPLIED = "rm", "vd", "fr", "sq"


def _removed_hold(image):
    """The stats item's name for the hold a removed message was under, or None."""
    ends = (image or {}).get("ce", {}).get("N")
    if ends is None:
        return None
    return "h" + hold_key("c" if image.get("cl") else "d", int(ends))


def _voided(ranges):
    pairs = [text.split(":") for text in ranges or ()]
    return [(int(low), int(high)) for low, high in pairs]


def _deltas(records, floor, voided):
    """Fold one queue's stream records into counter deltas: what was removed
    of this incarnation (positions from `floor`), not counting positions a
    failed post gave up (`voided`, already taken off)."""
    deltas = defaultdict(int)
    for record in records:
        if record.get("eventName") != "REMOVE":
            continue
        data = record["dynamodb"]
        position = int(data["Keys"]["sk"]["S"][len(MESSAGE_PREFIX):], 16)
        if position < floor or any(low <= position <= high for low, high in voided):
            continue
        deltas[REMOVED] += 1
        hold = _removed_hold(data.get("OldImage"))
        if hold:
            deltas[hold] -= 1
    return {name: delta for name, delta in deltas.items() if delta}


def _table():
    """The low-level client and name of the messages table: counters have
    names chosen at run time, which pynamodb models cannot express."""
    return MessageRecord._get_connection().connection.client, MessageRecord.Meta.table_name


def _plain(item):
    return {name: int(value["N"]) if "N" in value else value.get("S", value.get("SS"))
            for name, value in item.items() if name not in ("pq", "sk")}


def _load(pq):
    """The queue's stats item as {attribute: value} (numbers as int)."""
    client, table = _table()
    return _plain(retrying(client.get_item, TableName=table, ConsistentRead=True,
                           Key={"pq": {"S": pq}, "sk": {"S": STATS_KEY}}).get("Item", {}))


def _live_holds(item, prefix, now):
    """{kind: count} of the holds named `prefix`<kind><minute> not yet over."""
    counts = defaultdict(int)
    for name, count in item.items():
        key = name[len(prefix):]
        if name.startswith(prefix) and key[1:].isdigit() and key[0] in "cd":
            if (int(key[1:]) + 1) * HOLD_BUCKET_MS > now:
                counts[key[0]] += int(count)
    return counts


def _apply_queue(pq, records, floor, now):
    """Apply one queue's records with one conditional update.

    The item remembers the last sequence number applied (`sq`), so a retried
    batch skips what it already counted, and the update only lands if no other
    writer applied records in between.
    """
    client, table = _table()
    item = _load(pq)
    applied = int(item.get(APPLIED) or 0)
    fresh = [r for r in records if int(r["dynamodb"]["SequenceNumber"]) > applied]
    if not fresh:
        return
    deltas = _deltas(fresh, floor, _voided(item.get(VOID_RANGES)))
    # Removed holds of minutes gone by count nothing any more: drop them.
    gone = now // HOLD_BUCKET_MS
    stale = [name for name in item if name[:2] in ("hc", "hd") and name[2:].isdigit()
             and int(name[2:]) < gone and name not in deltas]
    names = {"#sq": APPLIED}
    values = {":sq": {"S": fresh[-1]["dynamodb"]["SequenceNumber"]}}
    adds = []
    for index, (name, delta) in enumerate(deltas.items()):
        names[f"#a{index}"] = name
        values[f":a{index}"] = {"N": str(delta)}
        adds.append(f"#a{index} :a{index}")
    expression = "SET #sq = :sq"
    if adds:
        expression += " ADD " + ", ".join(adds)
    if stale:
        names.update({f"#r{index}": name for index, name in enumerate(stale)})
        expression += " REMOVE " + ", ".join(f"#r{index}" for index in range(len(stale)))
    if APPLIED in item:
        condition = "#sq = :read"
        values[":read"] = {"S": item[APPLIED]}
    else:
        condition = "attribute_not_exists(#sq)"
    retrying(client.update_item, TableName=table,
             Key={"pq": {"S": pq}, "sk": {"S": STATS_KEY}},
             UpdateExpression=expression, ConditionExpression=condition,
             ExpressionAttributeNames=names, ExpressionAttributeValues=values)


def apply_stream_records(records: list[dict]) -> list[str]:
    """Count the messages a batch of stream records shows removed.

    Returns the sequence numbers of the first record of each queue whose
    update failed, for Lambda's partial batch response: Lambda resumes from the
    earliest, and what was applied already is skipped then.
    """
    by_queue = defaultdict(list)
    for record in records:
        keys = record.get("dynamodb", {}).get("Keys", {})
        if (record.get("eventName") == "REMOVE"
                and keys.get("sk", {}).get("S", "").startswith(MESSAGE_PREFIX)):
            by_queue[keys["pq"]["S"]].append(record)
    if not by_queue:
        return []
    # A batch comes from one stream: the stage's table's, or a pool's.
    with places.at(pools.of_stream(records[0].get("eventSourceARN", ""))):
        return _apply_queues(by_queue)


def _apply_queues(by_queue):
    now = clock.now_ms()
    failed = []
    for pq, queue_records in by_queue.items():
        project, _, queue = pq.rpartition("/")
        try:
            _, floor = queue_store.get_with_floor(project, queue)
            if floor is not None:
                _apply_queue(pq, queue_records, floor, now)
        except Exception as error:  # the others still count; this queue is retried
            if condition_failed(error):  # another writer (a queue delete) came first
                log.warning("stats of %s changed meanwhile; its records are retried", pq)
            else:
                log.exception("stats of %s not updated", pq)
            failed.append(queue_records[0]["dynamodb"]["SequenceNumber"])
    return failed


def _state_and_counts(pq):
    """(the queue's QueueState, its stats item), read in one query."""
    client, table = _table()
    found = retrying(client.query, TableName=table, ConsistentRead=True,
                     KeyConditionExpression="pq = :pq AND sk BETWEEN :s AND :t",
                     ExpressionAttributeValues={":pq": {"S": pq}, ":s": {"S": STATE_KEY},
                                                ":t": {"S": STATS_KEY}})["Items"]
    by_key = {item["sk"]["S"]: item for item in found}
    state = (QueueState.from_raw_data(by_key[STATE_KEY]) if STATE_KEY in by_key
             else QueueState(pq, STATE_KEY))
    return state, _plain(by_key.get(STATS_KEY, {}))


def _reserved(state, floor):
    """Positions handed out in this incarnation of the queue."""
    if floor > 1:  # a queue purged or created again: its positions start at the floor
        return max(0, int(state.counter or 0) - floor + 1)
    return int(state.posted or 0)


def _edge_message(pq, floor, now, newest, hidden):
    """The oldest (or newest) live message, reading a few items at most."""
    if newest:
        found = MessageRecord.query(
            pq, MessageRecord.sk.between(position_key(max(floor, 0)),
                                         position_key(2 ** 64 - 1)),
            scan_index_forward=False, page_size=5)
    else:
        found = scan(pq, floor, page_size=5)
    for index, record in enumerate(found):
        if (record.expires > now and record.batch_token not in hidden
                and position_of(record.message_id) >= floor):
            return record
        if index >= 50:
            return None
    return None


def _total(state, counts, floor):
    return max(0, _reserved(state, floor) - counts.get(REMOVED, 0) - counts.get(VOID, 0))


def message_total(project: str, queue: str, floor: int) -> int:
    return _total(*_state_and_counts(queue_key(project, queue)), floor)


def queue_stats(project: str, queue: str,
                floor: int) -> tuple[dict[str, int], Message | None, Message | None]:
    """({"claimed", "delayed", "free", "total"}, the oldest Message, the
    newest Message); either message is None when there is none."""
    pq = queue_key(project, queue)
    now = clock.now_ms()
    state, counts = _state_and_counts(pq)
    total = _total(state, counts, floor)
    holds = state.holds.as_dict() if state.holds is not None else {}
    kept, removed = _live_holds(holds, "", now), _live_holds(counts, "h", now)
    claimed = min(total, max(0, kept["c"] + removed["c"]))
    delayed = min(total - claimed, max(0, kept["d"] + removed["d"]))
    result = {"claimed": claimed, "delayed": delayed,
              "free": total - claimed - delayed, "total": total}
    oldest = newest = None
    if total:
        _, hidden = unfinished_batches(state, now)
        oldest = _edge_message(pq, floor, now, False, hidden)
        newest = _edge_message(pq, floor, now, True, hidden)
    return (result, oldest and to_message(oldest, now), newest and to_message(newest, now))

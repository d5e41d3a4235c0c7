"""Queue stats, kept up to date from the messages table's stream.

Counting on each stats call would read the whole queue. Instead a
stream-triggered function folds each batch of changes into one stats item per
queue (sk "t"): the number of messages, and the number of holds (claims and
delays) bucketed by the minute they end. A stats call reads that item and two
single-item queries for the oldest and newest message, whatever the depth.

So stats are approximate, as SQS's are and Zaqar's are not: they lag the
stream (a second or so), a hold is counted until the end of the minute it
ends in, and expired messages count as free until the sweeper or TTL removes
them (Zaqar's MongoDB driver does the same).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING

from chalicelib import clock
from chalicelib.storage import queues as queue_store
from chalicelib.storage.messages import position_key, scan, to_message
from chalicelib.storage.models import MESSAGE_PREFIX, STATS_KEY, MessageRecord, queue_key
from chalicelib.storage.retry import condition_failed, retrying

if TYPE_CHECKING:
    from chalicelib.storage.base import Message

MINUTE_MS = 60_000
log = logging.getLogger("zaqar.stats")


def _number(image, name):
    value = (image or {}).get(name)
    return int(value["N"]) if value and "N" in value else None


def _hold_bucket(image):
    """Name of the counter a message's hold falls in, or None if not held."""
    ends = _number(image, "ce")
    if ends is None:
        return None
    kind = "hc" if image.get("cl") else "hd"
    return f"{kind}{ends // MINUTE_MS}"


def _deltas(records, floor):
    """Fold one queue's stream records into counter deltas. Changes to what a
    deleted incarnation left behind (positions below `floor`) count nowhere."""
    deltas = defaultdict(int)
    for record in records:
        data = record["dynamodb"]
        if int(data["Keys"]["sk"]["S"][len(MESSAGE_PREFIX):], 16) < floor:
            continue
        event = record.get("eventName")
        old, new = data.get("OldImage"), data.get("NewImage")
        if event == "INSERT":
            deltas["tot"] += 1
        elif event == "REMOVE":
            deltas["tot"] -= 1
        old_bucket = _hold_bucket(old) if event != "INSERT" else None
        new_bucket = _hold_bucket(new) if event != "REMOVE" else None
        if old_bucket != new_bucket:
            if old_bucket:
                deltas[old_bucket] -= 1
            if new_bucket:
                deltas[new_bucket] += 1
    return {name: delta for name, delta in deltas.items() if delta}


def _table():
    """The low-level client and name of the messages table: bucket counters
    have names chosen at run time, which pynamodb models cannot express."""
    return MessageRecord._get_connection().connection.client, MessageRecord.Meta.table_name


def _load(pq):
    """The queue's stats item as {attribute: value} (numbers as int)."""
    client, table = _table()
    item = retrying(client.get_item, TableName=table, ConsistentRead=True,
                    Key={"pq": {"S": pq}, "sk": {"S": STATS_KEY}}).get("Item", {})
    return {name: int(value["N"]) if "N" in value else value.get("S")
            for name, value in item.items() if name not in ("pq", "sk")}


def _holds(item):
    return {name: count for name, count in item.items()
            if name[:2] in ("hc", "hd") and name[2:].isdigit()}


def _apply_queue(pq, records, floor, now_minute):
    """Apply one queue's records with one conditional update.

    The item remembers the last sequence number applied (`sq`), so a retried
    batch skips what it already counted, and the update only lands if no other
    writer applied records in between.
    """
    client, table = _table()
    item = _load(pq)
    applied = int(item.get("sq") or 0)
    fresh = [r for r in records if int(r["dynamodb"]["SequenceNumber"]) > applied]
    if not fresh:
        return
    deltas = _deltas(fresh, floor)
    # Buckets of minutes gone by count nothing any more: drop them.
    stale = [name for name in _holds(item) if int(name[2:]) < now_minute
             and name not in deltas]
    names = {"#sq": "sq"}
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
    if "sq" in item:
        condition = "#sq = :read"
        values[":read"] = {"S": item["sq"]}
    else:
        condition = "attribute_not_exists(#sq)"
    retrying(client.update_item, TableName=table,
             Key={"pq": {"S": pq}, "sk": {"S": STATS_KEY}},
             UpdateExpression=expression, ConditionExpression=condition,
             ExpressionAttributeNames=names, ExpressionAttributeValues=values)


def apply_stream_records(records: list[dict]) -> list[str]:
    """Fold a batch of stream records into each queue's counters.

    Returns the sequence numbers of the first record of each queue whose
    update failed, for Lambda's partial batch response: Lambda resumes from the
    earliest, and what was applied already is skipped then.
    """
    by_queue = defaultdict(list)
    for record in records:
        keys = record.get("dynamodb", {}).get("Keys", {})
        if keys.get("sk", {}).get("S", "").startswith(MESSAGE_PREFIX):
            by_queue[keys["pq"]["S"]].append(record)
    now_minute = clock.now_ms() // MINUTE_MS
    failed = []
    for pq, queue_records in by_queue.items():
        project, _, queue = pq.rpartition("/")
        try:
            _, floor = queue_store.get_with_floor(project, queue)
            if floor is not None:
                _apply_queue(pq, queue_records, floor, now_minute)
        except Exception as error:  # the others still count; this queue is retried
            if condition_failed(error):  # another writer (a queue delete) came first
                log.warning("stats of %s changed meanwhile; its records are retried", pq)
            else:
                log.exception("stats of %s not updated", pq)
            failed.append(queue_records[0]["dynamodb"]["SequenceNumber"])
    return failed


def _edge_message(pq, floor, now, newest):
    """The oldest (or newest) live message, reading a few items at most."""
    if newest:
        found = MessageRecord.query(
            pq, MessageRecord.sk.between(position_key(max(floor, 0)),
                                         position_key(2 ** 64 - 1)),
            scan_index_forward=False, page_size=5)
    else:
        found = scan(pq, floor, page_size=5)
    for index, record in enumerate(found):
        if record.expires > now:
            return record
        if index >= 50:
            return None
    return None


def message_total(project: str, queue: str) -> int:
    return max(0, _load(queue_key(project, queue)).get("tot", 0))


def queue_stats(project: str, queue: str,
                floor: int) -> tuple[dict[str, int], Message | None, Message | None]:
    """({"claimed", "delayed", "free", "total"}, the oldest Message, the
    newest Message); either message is None when there is none."""
    pq = queue_key(project, queue)
    now = clock.now_ms()
    item = _load(pq)
    total = item.get("tot", 0)
    live = {name: count for name, count in _holds(item).items()
            if (int(name[2:]) + 1) * MINUTE_MS > now}
    claimed = max(0, sum(c for n, c in live.items() if n.startswith("hc")))
    delayed = max(0, sum(c for n, c in live.items() if n.startswith("hd")))
    total = max(0, total)
    result = {"claimed": claimed, "delayed": delayed,
              "free": max(0, total - claimed - delayed), "total": total}
    oldest = newest = None
    if total:
        oldest = _edge_message(pq, floor, now, newest=False)
        newest = _edge_message(pq, floor, now, newest=True)
    return (result, oldest and to_message(oldest, now), newest and to_message(newest, now))


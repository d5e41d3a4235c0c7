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
from collections import defaultdict

from chalicelib import clock
from chalicelib.storage import queues as queue_store
from chalicelib.storage.messages import position_key, scan
from chalicelib.storage.models import (
    MESSAGE_PREFIX, STATS_KEY, MessageRecord, queue_key)
from chalicelib.storage.retry import retrying

MINUTE_MS = 60_000


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


def changes_by_queue(records, floor_of):
    """Fold stream records into counter deltas per queue partition.

    `floor_of(pq)` gives the floor of the queue's current incarnation (None if
    it is gone): changes to what a deleted queue left behind count nowhere.
    """
    deltas = defaultdict(lambda: defaultdict(int))
    for record in records:
        data = record.get("dynamodb", {})
        keys = data.get("Keys", {})
        sort_key = keys.get("sk", {}).get("S", "")
        if not sort_key.startswith(MESSAGE_PREFIX):
            continue
        pq = keys["pq"]["S"]
        floor = floor_of(pq)
        if floor is None or int(sort_key[len(MESSAGE_PREFIX):], 16) < floor:
            continue
        event = record.get("eventName")
        old, new = data.get("OldImage"), data.get("NewImage")
        if event == "INSERT":
            deltas[pq]["total"] += 1
        elif event == "REMOVE":
            deltas[pq]["total"] -= 1
        old_bucket = _hold_bucket(old) if event != "INSERT" else None
        new_bucket = _hold_bucket(new) if event != "REMOVE" else None
        if old_bucket != new_bucket:
            if old_bucket:
                deltas[pq][old_bucket] -= 1
            if new_bucket:
                deltas[pq][new_bucket] += 1
    return deltas


def _floor_of(pq):
    project, _, queue = pq.rpartition("/")
    _, floor = queue_store.get_with_floor(project, queue)
    return floor


def _table():
    """The low-level client and name of the messages table: bucket counters
    have names chosen at run time, which pynamodb models cannot express."""
    return MessageRecord._get_connection().connection.client, MessageRecord.Meta.table_name


def _load(pq):
    """(total, {bucket: count}) from the queue's stats item."""
    client, table = _table()
    item = retrying(client.get_item, TableName=table, ConsistentRead=True,
                    Key={"pq": {"S": pq}, "sk": {"S": STATS_KEY}}).get("Item", {})
    holds = {name: int(value["N"]) for name, value in item.items()
             if name[:2] in ("hc", "hd") and name[2:].isdigit()}
    return int(item.get("tot", {"N": "0"})["N"]), holds


def apply_stream_records(records):
    """One counter update per queue touched by this batch of stream records."""
    client, table = _table()
    now_minute = clock.now_ms() // MINUTE_MS
    floors = {}

    def floor_of(pq):
        if pq not in floors:
            floors[pq] = _floor_of(pq)
        return floors[pq]

    for pq, deltas in changes_by_queue(records, floor_of).items():
        _, holds = _load(pq)
        # Buckets of minutes gone by count nothing any more: drop them.
        stale = [name for name in holds if int(name[2:]) < now_minute
                 and name not in deltas]
        changed = [(name, delta) for name, delta in deltas.items() if delta]
        if not changed and not stale:
            continue
        names = {f"#a{i}": ("tot" if name == "total" else name)
                 for i, (name, _) in enumerate(changed)}
        names.update({f"#r{i}": name for i, name in enumerate(stale)})
        values = {f":a{i}": {"N": str(delta)} for i, (_, delta) in enumerate(changed)}
        clauses = []
        if changed:
            clauses.append("ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(changed))))
        if stale:
            clauses.append("REMOVE " + ", ".join(f"#r{i}" for i in range(len(stale))))
        retrying(client.update_item, TableName=table,
                 Key={"pq": {"S": pq}, "sk": {"S": STATS_KEY}},
                 UpdateExpression=" ".join(clauses), ExpressionAttributeNames=names,
                 **({"ExpressionAttributeValues": values} if values else {}))


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


def queue_stats(project, queue, floor):
    """{"claimed", "delayed", "free", "total"} and, if any, the oldest and
    newest message records."""
    pq = queue_key(project, queue)
    now = clock.now_ms()
    total, holds = _load(pq)
    live = {name: count for name, count in holds.items()
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
    return result, oldest, newest


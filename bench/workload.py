"""Bench helpers that use the app's storage: build a queue at a depth with
half of it claimed, size message bodies, move the clock, feed the stats
counters from the stream.

Import this only after bench.common.start_dynamodb() (the models read the
endpoint and table names at import).
"""
import itertools
import json
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import item_size
from chalicelib import clock
from chalicelib.config import get_settings
from chalicelib.storage import claims as claim_store
from chalicelib.storage import messages as message_store
from chalicelib.storage import queues as queue_store
from chalicelib.storage import stats as stats_store
from chalicelib.storage.messages import position_of
from chalicelib.storage.models import STATE_KEY, MessageRecord, QueueState, queue_key
from chalicelib.validation import Context

PRODUCER = "3381af92-2b9e-11e3-b191-71861300734c"
CONSUMER = "7f0c1e2a-6b1d-4c8e-9a55-2f4b6a3d9e10"
POST_CHUNK = 250          # messages per storage-level post while filling
SETUP_CLAIM_TTL = 43_200  # the claimed half stays held through the whole run
STREAM_BATCH = 500        # the stream handler's batch size (app.py)


def context(project, client_id):
    return Context(project=project, client_id=client_id, roles=frozenset(),
                   settings=get_settings())


# -- message size --------------------------------------------------------------

def _sample_record(body, claimed):
    """A record exactly as messages.post builds it (ttl 3600 s), and, if
    `claimed`, with what a claim adds (claims._hold)."""
    now = clock.now_ms()
    body_text = json.dumps(body)
    record = MessageRecord(
        "bench/queue-100000", message_store.position_key(2 ** 52 + 123_456),
        message_id=message_store.message_id_of(2 ** 52 + 123_456), body=body_text,
        ttl=3600, created=now, expires=now + 3_600_000, expires_at=now // 1000 + 3601,
        client_id=PRODUCER, claim_count=0)
    if claimed:
        record.claim_id = claim_store.new_claim_id(now + 300_000)
        record.claim_expires = now + 300_000
        record.claim_count = 1
    return record


def record_size(record):
    return item_size(record.serialize())


def sized_body(claimed_target=1000):
    """A body whose message item, once claimed (its largest state), is about
    `claimed_target` bytes: so posting, claiming and deleting it are all
    1-WRU writes. Returns (body, size as posted, size as claimed)."""
    low, high = 0, 4000
    while low < high:  # largest filler that stays within the target
        middle = (low + high + 1) // 2
        body = {"event": "bench", "payload": "x" * middle}
        if record_size(_sample_record(body, claimed=True)) <= claimed_target:
            low = middle
        else:
            high = middle - 1
    body = {"event": "bench", "payload": "x" * low}
    return (body, record_size(_sample_record(body, claimed=False)),
            record_size(_sample_record(body, claimed=True)))


def stored_item_size(project, queue, message_id):
    """Billed size of a message item as DynamoDB Local holds it now."""
    client = MessageRecord._get_connection().connection.client
    item = client.get_item(
        TableName=MessageRecord.Meta.table_name,
        Key={"pq": {"S": queue_key(project, queue)},
             "sk": {"S": message_store.position_key(position_of(message_id))}})["Item"]
    return item_size(item)


# -- building a queue -----------------------------------------------------------

def fill_queue(project, queue, depth, body, threads=8):
    """Post `depth` messages (ttl 3600 s) through the storage layer, in posts
    of POST_CHUNK from `threads` threads. Returns seconds taken."""
    if queue_store.get_with_floor(project, queue)[0] is None:
        queue_store.create(project, queue, {})
    chunks = [min(POST_CHUNK, depth - start) for start in range(0, depth, POST_CHUNK)]
    started = time.perf_counter()

    def post(count):
        message_store.post(project, queue, [{"body": body, "ttl": 3600}] * count, PRODUCER)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(post, chunks))
    return time.perf_counter() - started


def _claim_group(pq, floor, records):
    """Hold these (free) records under one claim, as claims.create does with
    the candidates it finds: the claim record first (Claimer.record), then
    the same conditional update per message (Claimer.take). Only the search
    is skipped, so that disjoint groups can be claimed in parallel without
    racing each other."""
    claimer = claim_store.Claimer(pq, floor, SETUP_CLAIM_TTL, 60, len(records),
                                  clock.now_ms())
    claimer.record(records)
    for record in records:
        claimer.take(record)
    # And counts them for stats, as the claim's state write does.
    message_store.update_creating_maps(QueueState(pq, STATE_KEY), message_store.add_holds(
        {message_store.hold_key("c", claimer.expires): len(claimer.taken)}))
    return len(claimer.taken)


def claim_oldest_half(project, queue, depth, threads=8, group=20):
    """Claim the oldest depth/2 messages (claims of `group`, ttl 12 h).

    All but the last are taken in parallel groups; the last one is taken by
    real claims (claims.create, limit 1): those read from the cursor, which
    still sits at the queue's first position, and move it past the held
    messages (at most 1,000 read per claim), as claimers would have. So the
    cursor ends where the claimers' own work puts it.

    Returns (seconds for the groups, seconds for the cursor claims, number
    of cursor claims).
    """
    _, floor = queue_store.get_with_floor(project, queue)
    pq = queue_key(project, queue)
    half = depth // 2
    records = list(itertools.islice(message_store.scan(pq, floor, page_size=500), half - 1))
    groups = [records[i:i + group] for i in range(0, len(records), group)]
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        taken = sum(pool.map(lambda g: _claim_group(pq, floor, g), groups))
    assert taken == half - 1, (taken, half)
    groups_seconds = time.perf_counter() - started
    started, rounds = time.perf_counter(), 0
    while True:
        rounds += 1
        _, got = claim_store.create(project, queue, floor, ttl=SETUP_CLAIM_TTL,
                                    grace=60, limit=1)
        if got:
            break
    return groups_seconds, time.perf_counter() - started, rounds


# -- stats counters from the stream -------------------------------------------

def feed_stats(reader, batch=STREAM_BATCH):
    """Apply the stream records written since the last call to the stats
    counters, in the handler's batch size. Returns the number of records."""
    records = reader.read_new()
    for start in range(0, len(records), batch):
        stats_store.apply_stream_records(records[start:start + batch])
    return len(records)


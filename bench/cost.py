"""DynamoDB work per API call, at queue depths 100 and 100,000 with the
oldest half of the messages claimed, on DynamoDB Local.

    .venv/bin/python -m bench.cost            # ~5-8 minutes on 2 cores

Calls go through the actions layer (chalicelib/actions, the code every
transport calls), with a Context as the REST layer builds it. The counters
the stats call reads are kept from the real
stream of the messages table (read from DynamoDB Local, applied in the
handler's batches of 500), and that handler's own work is shown too.

Each depth runs warm-up rounds, then measured rounds; a round moves the
app's clock 20 s forward and does what producers and consumers do:

  post 10 | list 20 | claim 10 (ttl 60) | get claim | renew | delete the 10 by
  ids | claim 10 | delete those one by one with the claim id | post 10 |
  stream -> stats counters | stats | one bare PutItem of the same size

so the depth and the claimed half stay where they were, and claims of
earlier rounds fall due (60 s) as they would in steady use: claimers and
lists then also read those timers, which is part of the steady-state cost.

Then what an echo-off listing costs a producer whose own messages fill the
head of a queue, 100 and 5,000 of them, with another client's behind (so its
run is closed and read from its item), and what a post costs that follows
another client's post (it closes a run). Then two concurrency sections:
1, 2, 4 and 8 claimers emptying a queue of 800 messages together, and
bench/throughput.py's workload (4 producers, 8 workers claiming and
deleting) run in this process without HTTP, with the cost of claims that
found messages and of those that found none.
"""
import sys
import time
from collections import defaultdict

from bench import common

DEPTHS = (100, 100_000)
WARMUP_ROUNDS = 4
MEASURED_ROUNDS = 20
ROUND_STEP_S = 20
CLAIM = {"ttl": 60, "grace": 60}
PROJECT = "bench"
PRICE_WRU = 0.625 / 1e6   # $ per WRU, on demand, us-east-1 (platform-limits.md)
PRICE_RRU = 0.125 / 1e6

ROWS = [
    ("post 10", 1), ("list 20", 1), ("list 20, own client id (echo off)", 1),
    ("list 20, storage cursor path", 1), ("claim 10", 1), ("get claim", 1),
    ("renew claim", 1), ("delete 10 by ids", 1), ("delete 1 with claim id", 1),
    ("stats", 1), ("stream -> stats counters, per round", 1), ("bare PutItem", 1),
]


def dollars(usage):
    return usage.wru * PRICE_WRU + usage.rru * PRICE_RRU


class Recorder:
    """DynamoDB work and wall time per call name."""

    def __init__(self, meter):
        self.meter = meter
        self.usage = defaultdict(common.Usage)
        self.calls = defaultdict(int)
        self.seconds = defaultdict(list)
        self.returned = defaultdict(list)  # messages a list or claim returned
        self.on = False

    def call(self, name, function, returned=None):
        with self.meter.measure() as measured:
            result = function()
        if self.on:
            self.usage[name] = self.usage[name] + measured.usage
            self.calls[name] += 1
            self.seconds[name].append(measured.seconds)
            if returned is not None:
                self.returned[name].append(returned(result))
        return result

    def average(self, name):
        return self.usage[name].scaled(1 / self.calls[name]) if self.calls[name] else None


def bench_depth(depth, body, reader, clock, meter):
    from bench import workload
    from chalicelib.actions import claims as claim_actions
    from chalicelib.actions import messages as message_actions
    from chalicelib.actions import queues as queue_actions
    from chalicelib.storage import listing
    from chalicelib.storage import queues as queue_store
    from chalicelib.storage import stats as stats_store
    from chalicelib.storage.models import MessageRecord

    queue = f"depth-{depth}"
    producer = workload.context(PROJECT, workload.PRODUCER)
    consumer = workload.context(PROJECT, workload.CONSUMER)
    print(f"== depth {depth:,} (queue {queue}) ==")

    with meter.measure() as fill:
        fill_seconds = workload.fill_queue(PROJECT, queue, depth, body)
    print(f"fill: {depth:,} messages posted through storage.messages.post "
          f"({workload.POST_CHUNK} per post, 8 threads) in {fill_seconds:.1f} s "
          f"= {depth / fill_seconds:,.0f} msg/s; {fill.usage.breakdown()}; "
          f"WRU {fill.usage.wru:,.0f}")
    with meter.measure() as held:
        groups_s, cursor_s, cursor_claims = workload.claim_oldest_half(PROJECT, queue, depth)
    print(f"claim the oldest half ({depth // 2:,}): {groups_s:.1f} s in parallel claims "
          f"of 20 + {cursor_s:.1f} s for {cursor_claims} real claims moving the cursor; "
          f"{held.usage.breakdown()}; WRU {held.usage.wru:,.0f}, RRU {held.usage.rru:,.0f}")
    with meter.measure() as fed:
        records = workload.feed_stats(reader)
    print(f"stream -> stats counters: {records:,} records in {fed.seconds:.1f} s; "
          f"{fed.usage.breakdown()}; WRU {fed.usage.wru:,.0f}, RRU {fed.usage.rru:,.0f}")
    _, floor = queue_store.get_with_floor(PROJECT, queue)
    counts, oldest, newest = stats_store.queue_stats(PROJECT, queue, floor)
    print(f"stats after the fill: {counts}")

    bare_item = workload._sample_record(body, claimed=False).serialize()
    bare_item["pq"] = {"S": "bench/bare-puts"}
    bare_client = MessageRecord._get_connection().connection.client
    sequence = iter(range(10 ** 9))

    def bare_put():
        # Not an "m#" key: the stats handler must not count these.
        bare_item["sk"] = {"S": f"b#{next(sequence):016x}"}
        bare_client.put_item(TableName=MessageRecord.Meta.table_name, Item=bare_item)

    def stats_call():
        return queue_actions.stats(consumer, queue)

    document = {"messages": [{"body": body, "ttl": 3600} for _ in range(10)]}
    recorder = Recorder(meter)
    short_claims = 0
    for round_number in range(WARMUP_ROUNDS + MEASURED_ROUNDS):
        recorder.on = round_number >= WARMUP_ROUNDS
        clock.advance(ROUND_STEP_S)
        call = recorder.call
        call("post 10", lambda: message_actions.post(producer, queue, document))
        found = lambda result: len(result[0])  # noqa: E731  (messages, marker, ...)
        call("list 20", lambda: message_actions.list_messages(consumer, queue, limit=20),
             found)
        call("list 20, own client id (echo off)",
             lambda: message_actions.list_messages(producer, queue, limit=20), found)
        call("list 20, storage cursor path",
             lambda: listing.list_messages(PROJECT, queue, floor, limit=20,
                                           skip_client=workload.CONSUMER), found)
        taken_count = lambda result: len(result[1])  # noqa: E731  (claim id, messages)
        claim_id, taken = call("claim 10", lambda: claim_actions.create(
            consumer, queue, dict(CLAIM), limit=10), taken_count)
        call("get claim", lambda: claim_actions.get(consumer, queue, claim_id))
        call("renew claim", lambda: claim_actions.update(consumer, queue, claim_id, dict(CLAIM)))
        call("delete 10 by ids", lambda: message_actions.delete_many(
            consumer, queue, [message.id for message in taken]))
        second_id, second = call("claim 10", lambda: claim_actions.create(
            consumer, queue, dict(CLAIM), limit=10), taken_count)
        for message in second:
            call("delete 1 with claim id", lambda: message_actions.delete(
                consumer, queue, message.id, claim_id=second_id))
        short_claims += (len(taken) < 10) + (len(second) < 10)
        call("post 10", lambda: message_actions.post(producer, queue, document))
        call("stream -> stats counters, per round", lambda: workload.feed_stats(reader))
        call("stats", stats_call)
        call("bare PutItem", bare_put)
    for _ in range(30):  # more samples of the reference
        call("bare PutItem", bare_put)
    if short_claims:
        print(f"WARNING: {short_claims} claims took fewer than 10 messages")
    shown, _ = stats_call()
    oldest, newest = shown.pop("oldest"), shown.pop("newest")
    print(f"stats after the rounds: {shown}")
    sizes = (workload.stored_item_size(PROJECT, queue, oldest["id"]),
             workload.stored_item_size(PROJECT, queue, newest["id"]))
    print(f"stored message items: {sizes[0]} bytes claimed (oldest), "
          f"{sizes[1]} bytes free (newest)")
    print()
    return recorder


def print_depth(depth, recorder):
    put_median = common.median(recorder.seconds["bare PutItem"])
    rows = []
    for name, _ in ROWS:
        usage = recorder.average(name)
        if usage is None:
            continue
        wall = common.median(recorder.seconds[name])
        returned = recorder.returned.get(name)
        rows.append([name, recorder.calls[name],
                     round(sum(returned) / len(returned), 1) if returned else None,
                     round(usage.total_requests, 2),
                     usage.breakdown(), round(usage.rru, 2), round(usage.wru, 2),
                     round(usage.failed_conditions, 2), round(usage.index_wru, 2),
                     round(dollars(usage) * 1e6, 3), round(wall * 1000, 1),
                     round(wall / put_median, 1)])
    common.print_table(
        ["call (average per call)", "calls", "msgs out", "requests", "by operation", "RRU", "WRU",
         "failed cond.", "index WU", "$/million", "median ms", "x PutItem"],
        rows, title=f"Per call at depth {depth:,} ({MEASURED_ROUNDS} measured rounds, "
                    f"after {WARMUP_ROUNDS} warm-up rounds)")


def life(recorder):
    """WRU per message over post 10 -> claim 10 -> delete one by one with the
    claim id; and what the stream handler adds (20 messages live per round)."""
    post = recorder.average("post 10").wru / 10
    claim = recorder.average("claim 10").wru / 10
    delete = recorder.average("delete 1 with claim id").wru
    stream = recorder.average("stream -> stats counters, per round").wru / 20
    return post, claim, delete, stream


OWN_HEADS = (100, 5_000)
SAMPLES = 10


def echo_off_behind_own(meter, body):
    """A producer lists with echo off (Zaqar's default) a queue whose head is
    its own messages, OWN_HEADS of them, with another client's 10 behind:
    its run is closed, so the listing reads the run items. And posts of 10
    that alternate between two clients: each closes a run."""
    from bench import workload
    from chalicelib.actions import messages as message_actions
    producer = workload.context(PROJECT, workload.PRODUCER)
    consumer = workload.context(PROJECT, workload.CONSUMER)
    document = {"messages": [{"body": body, "ttl": 3600} for _ in range(10)]}
    rows = []
    for head in OWN_HEADS:
        queue = f"own-head-{head}"
        workload.fill_queue(PROJECT, queue, head, body)
        message_actions.post(consumer, queue, document)
        usage, out = common.Usage(), set()
        for _ in range(SAMPLES):
            with meter.measure() as measured:
                found, _, _ = message_actions.list_messages(producer, queue, limit=20)
            usage, out = usage + measured.usage, out | {len(found)}
        usage = usage.scaled(1 / SAMPLES)
        rows.append([f"list 20 echo off, {head:,} own messages at the head",
                     "/".join(map(str, sorted(out))), round(usage.total_requests, 2),
                     usage.breakdown(), round(usage.rru, 2), round(usage.wru, 2)])
    queue = "alternating-posts"
    for ctx in (producer, consumer):  # the queue made, one run each
        message_actions.post(ctx, queue, document)
    usage = common.Usage()
    for number in range(2 * SAMPLES):
        with meter.measure() as measured:
            message_actions.post(producer if number % 2 == 0 else consumer, queue, document)
        usage = usage + measured.usage
    usage = usage.scaled(1 / (2 * SAMPLES))
    rows.append(["post 10 after another client's post", "-", round(usage.total_requests, 2),
                 usage.breakdown(), round(usage.rru, 2), round(usage.wru, 2)])
    common.print_table(["call (average of %d)" % SAMPLES, "msgs out", "requests",
                        "by operation", "RRU", "WRU"], rows,
                       title="Echo off behind the caller's own messages, and runs' cost "
                             "on posts")


def contention(meter, body, post_wru, messages=800):
    """Claim cost when several consumers claim from one queue at once: each
    claimer reads the same cursor and races for the same candidates, and a
    lost race is a failed conditional write (billed, 1 WRU)."""
    import threading

    from bench import workload
    from chalicelib.actions import claims as claim_actions
    rows = []
    for threads in (1, 2, 4, 8):
        queue = f"contention-{threads}"
        workload.fill_queue(PROJECT, queue, messages, body)
        consumer = workload.context(PROJECT, workload.CONSUMER)
        claimed, claims = [], []

        def claimer():
            while True:
                _, taken = claim_actions.create(consumer, queue, dict(CLAIM), limit=10)
                claims.append(len(taken))
                if not taken:
                    return
                claimed.extend(taken)

        with meter.measure() as measured:
            workers = [threading.Thread(target=claimer) for _ in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        usage, count = measured.usage, len(claimed)
        unique = len({message.id for message in claimed})
        rows.append([threads, len(claims), count, "yes" if unique == count == messages else "NO",
                     round(usage.total_requests / count, 2), round(usage.rru / count, 2),
                     round(usage.wru / count, 3), round(usage.failed_conditions / count, 3),
                     round(post_wru + usage.wru / count + 1, 2),
                     round(count / measured.seconds, 0)])
    common.print_table(
        ["claimers", "claims", "claimed", "each once?", "req/msg", "RRU/msg", "WRU/msg",
         "failed cond./msg", "life WRU", "msg/s"], rows,
        title=f"Concurrent claimers (claim 10 through the actions) emptying a queue of "
              f"{messages} messages; life WRU = post {post_wru:g} (measured above) + "
              "claim + delete 1")


def mixed(meter, body, producers=4, workers=8, total=2000, time_limit_s=120):
    """bench/throughput.py's workload, in this process and without HTTP: 4
    producers post 10s while 8 workers claim 10 and delete each message with
    its claim id. DynamoDB work per message life under that concurrency, and
    what claims cost, those that found messages and those that found none."""
    import threading

    from bench import workload
    from chalicelib.actions import claims as claim_actions
    from chalicelib.actions import messages as message_actions
    from chalicelib.actions import queues as queue_actions
    queue = "mixed"
    queue_actions.create(workload.context(PROJECT, workload.PRODUCER), queue, {})
    document = {"messages": [{"body": body, "ttl": 3600} for _ in range(10)]}
    lock = threading.Lock()
    state = {"batches": total // 10, "deleted": 0}
    claims = {"full": [], "empty": []}  # (usage, seconds) of each claim
    deadline = time.monotonic() + time_limit_s

    def producer():
        ctx = workload.context(PROJECT, workload.PRODUCER)
        while time.monotonic() < deadline:
            with lock:
                if state["batches"] <= 0:
                    return
                state["batches"] -= 1
            message_actions.post(ctx, queue, document)

    def worker():
        ctx = workload.context(PROJECT, workload.CONSUMER)
        while time.monotonic() < deadline:
            with lock:
                if state["deleted"] >= total:
                    return
            before, started = meter.thread_snapshot(), time.perf_counter()
            claim_id, taken = claim_actions.create(ctx, queue, dict(CLAIM), limit=10)
            spent = (meter.thread_snapshot() - before, time.perf_counter() - started)
            with lock:
                claims["full" if taken else "empty"].append(spent)
            if not taken:
                time.sleep(0.05)  # as a polling client would
                continue
            for message in taken:
                message_actions.delete(ctx, queue, message.id, claim_id=claim_id)
            with lock:
                state["deleted"] += len(taken)

    threads = ([threading.Thread(target=producer) for _ in range(producers)]
               + [threading.Thread(target=worker) for _ in range(workers)])
    with meter.measure() as run:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    done = state["deleted"]
    usage = run.usage.scaled(1 / max(1, done))
    print(f"Mixed workload in process (no HTTP): {producers} producers posting 10s, "
          f"{workers} workers claiming 10 and deleting one by one with the claim id: "
          f"{done:,} of {total:,} messages through their life in {run.seconds:.1f} s = "
          f"{done / run.seconds:.0f} messages/s")
    print(f"  per message life: {usage.total_requests:.2f} requests ({usage.breakdown()}), "
          f"RRU {usage.rru:.2f}, WRU {usage.wru:.2f} (of which failed conditions "
          f"{usage.failed_conditions:.2f})")
    rows = []
    for kind in ("full", "empty"):
        spent = claims[kind]
        if not spent:
            continue
        total_usage = sum((u for u, _ in spent), common.Usage()).scaled(1 / len(spent))
        rows.append([f"claim that found {'messages' if kind == 'full' else 'none'}",
                     len(spent), round(total_usage.total_requests, 2), total_usage.breakdown(),
                     round(total_usage.rru, 2), round(total_usage.wru, 2),
                     round(total_usage.failed_conditions, 2),
                     round(common.median([s for _, s in spent]) * 1000, 1)])
    common.print_table(["claim (average)", "count", "requests", "by operation", "RRU", "WRU",
                        "failed cond.", "median ms"], rows)


def main():
    global DEPTHS
    # A quick check of the script itself: python -m bench.cost 100 2000
    if len(sys.argv) == 3:
        DEPTHS = tuple(int(arg) for arg in sys.argv[1:])
    db = common.start_dynamodb()
    try:
        run(db)
    finally:
        db.stop()


def run(db):
    started = time.perf_counter()
    common.create_tables()
    meter = common.install_meter()
    from bench import workload
    from chalicelib.storage.models import MessageRecord
    from local.clock import FakeClock
    clock = FakeClock(running=True).install()
    body, posted_size, claimed_size = workload.sized_body()
    print("Engine: DynamoDB Local (in memory) at", db.endpoint)
    print(common.machine_load())
    print(common.code_version())
    print("Layer: chalicelib.actions (the transport-independent actions), with a "
          "Context as the REST layer builds it")
    print(f"Message: body of {len(common.dumps(body))} bytes of JSON; item as posted "
          f"{posted_size} B, as claimed {claimed_size} B (computed, names included)")
    print("botocore clients, one per model class (none shared):",
          "; ".join("+".join(group) for group in common.client_sharing()))
    print()
    reader = common.StreamReader(common.boto_client("dynamodb", db.endpoint),
                                 common.boto_client("dynamodbstreams", db.endpoint),
                                 MessageRecord.Meta.table_name)
    recorders = {}
    for depth in DEPTHS:
        recorders[depth] = bench_depth(depth, body, reader, clock, meter)
    for depth in DEPTHS:
        print_depth(depth, recorders[depth])

    rows = []
    for depth in DEPTHS:
        post, claim, delete, stream = life(recorders[depth])
        total = post + claim + delete
        rows.append([f"depth {depth:,}", round(post, 3), round(claim, 3), round(delete, 3),
                     round(total, 3), "yes" if total <= 3.3 + 1e-9 else "NO",
                     round(stream, 3), round(total + stream, 3)])
    common.print_table(
        ["message life (WRU per message)", "post", "claim", "delete", "total",
         "<= 3.3?", "+ stream handler", "total with it"],
        rows, title="One message's life: posted in 10s, claimed in 10s, deleted one by "
                    "one with the claim id")

    rows = []
    low, high = DEPTHS
    low_label, high_label = f"@{low:,}", f"@{high:,}"
    for name in ("claim 10", "list 20", "list 20, storage cursor path",
                 "list 20, own client id (echo off)", "stats", "post 10"):
        a, b = recorders[low].average(name), recorders[high].average(name)
        ratio = dollars(b) / dollars(a) if dollars(a) else None
        rows.append([name, round(a.total_requests, 2), round(b.total_requests, 2),
                     round(a.rru, 2), round(b.rru, 2), round(a.wru, 2), round(b.wru, 2),
                     round(ratio, 2) if ratio else None,
                     "yes" if ratio is not None and ratio <= 1.2 else "NO"])
    common.print_table(
        ["call", "req " + low_label, "req " + high_label, "RRU " + low_label,
         "RRU " + high_label, "WRU " + low_label, "WRU " + high_label, "cost ratio",
         "<= 1.2x?"],
        rows, title=f"Depth {high:,} vs {low:,} (cost = $ at on-demand prices, "
                    "RRU and WRU together)")
    echo_off_behind_own(meter, body)
    contention(meter, body, recorders[DEPTHS[0]].average("post 10").wru / 10)
    mixed(meter, body)
    empty = sum(recorders[d].usage[n].empty_reads for d in DEPTHS for n in recorders[d].usage)
    print(f"Note: {empty:,.0f} measured reads reported 0 units (empty Query results); "
          "they are counted as DynamoDB Local reports them.")
    clock.restore()
    print(common.machine_load())
    print(f"total run time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

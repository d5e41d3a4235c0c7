"""DynamoDB work of the background paths, on DynamoDB Local:

1. one sweep run (storage.sweeper.run) per 1,000 expired messages: post
   1,000 with ttl 60, move the app's clock (chalicelib.clock.now_ms) past
   their expiry, run the sweep and count; then a run with nothing to delete
   (what every queue costs each minute);
2. the stream handler that keeps the stats counters
   (stats.apply_stream_records, batches of 500 as in app.py), fed with the
   messages table's real stream read from DynamoDB Local;
3. a stats call (queue get + stats.queue_stats) at depths 100 and 100,000
   with the oldest half claimed.

    .venv/bin/python -m bench.lifecycle       # ~6-8 minutes on 2 cores
"""
import sys
import time

from bench import common

PROJECT = "bench"
DEPTHS = (100, 100_000)
STATS_CALLS = 20


def row(name, usage, seconds=None, per=1):
    usage = usage.scaled(1 / per)
    return [name, round(usage.total_requests, 2), usage.breakdown(), round(usage.rru, 2),
            round(usage.wru, 2), round(usage.failed_conditions, 2),
            None if seconds is None else round(seconds * 1000 / per, 1)]


HEADERS = ["work", "requests", "by operation", "RRU", "WRU", "failed cond.", "ms"]


def sweep_section(meter, clock, reader, body):
    from bench import workload
    from chalicelib.config import get_settings
    from chalicelib.storage import messages as message_store
    from chalicelib.storage import queues as queue_store
    from chalicelib.storage import stats as stats_store
    from chalicelib.storage import sweeper

    queue = "sweep-1000"
    queue_store.create(PROJECT, queue, {})
    for _ in range(100):  # posts of 10, as producers send them
        message_store.post(PROJECT, queue, [{"body": body, "ttl": 60}] * 10,
                                    workload.PRODUCER)
    workload.feed_stats(reader)
    _, floor = queue_store.get_with_floor(PROJECT, queue)
    before = stats_store.queue_stats(PROJECT, queue, floor)[0]
    clock.advance(120)  # every message is past its expiry (ttl 60 s)
    rows = []
    with meter.measure() as first:
        deleted = sweeper.run(clock.now + 25_000, get_settings()).deleted
    rows.append(row(f"sweep run: {deleted:,} expired messages deleted", first.usage,
                    first.seconds))
    if deleted and deleted != 1000:
        rows.append(row("  the same, per 1,000 expired", first.usage, first.seconds,
                        per=deleted / 1000))
    with meter.measure() as fed:
        records = workload.feed_stats(reader)
    rows.append(row(f"stream -> stats counters for those {records:,} records",
                    fed.usage, fed.seconds))
    after = stats_store.queue_stats(PROJECT, queue, floor)[0]
    with meter.measure() as idle:
        idle_deleted = sweeper.run(clock.now + 25_000, get_settings()).deleted
    rows.append(row(f"sweep run with nothing expired (1 empty queue, "
                    f"{idle_deleted} deleted)", idle.usage, idle.seconds))
    common.print_table(HEADERS, rows,
                       title="Sweep: 1,000 messages (posted in 10s, ttl 60) swept 120 s later")
    print(f"stats before the sweep: {before}")
    print(f"stats after the sweep (counters from the stream): {after}")
    print()


def idle_sweep_with_live_head(meter, clock, depth_queues):
    """A sweep run when the queues' heads are live: what each queue costs
    every minute even with nothing to delete."""
    from chalicelib.config import get_settings
    from chalicelib.storage import sweeper
    with meter.measure() as idle:
        deleted = sweeper.run(clock.now + 25_000, get_settings()).deleted
    return row(f"sweep run, nothing expired, {len(depth_queues) + 1} queues "
               f"({', '.join(depth_queues)} + the empty one); {deleted} deleted",
               idle.usage, idle.seconds)


def stats_section(meter, reader, body):
    from bench import workload
    from chalicelib.storage import queues as queue_store
    from chalicelib.storage import stats as stats_store

    rows, queues = [], []
    for depth in DEPTHS:
        queue = f"stats-{depth}"
        queues.append(queue)
        fill_seconds = workload.fill_queue(PROJECT, queue, depth, body)
        groups_s, cursor_s, _ = workload.claim_oldest_half(PROJECT, queue, depth)
        with meter.measure() as fed:
            records = workload.feed_stats(reader)
        print(f"depth {depth:,}: filled in {fill_seconds:.1f} s, oldest half claimed in "
              f"{groups_s + cursor_s:.1f} s, {records:,} stream records applied in "
              f"{fed.seconds:.1f} s")
        batches = -(-records // workload.STREAM_BATCH)
        rows.append(row(f"stream -> stats counters: {records:,} records of the fill, "
                        f"{batches} handler batches", fed.usage, fed.seconds))
        rows.append(row(f"  per handler batch (<= {workload.STREAM_BATCH} records, "
                        "one queue)", fed.usage, fed.seconds, per=batches))
        seconds, total = [], common.Usage()
        for _ in range(STATS_CALLS):
            with meter.measure() as call:
                _, floor = queue_store.get_with_floor(PROJECT, queue)
                counts, oldest, newest = stats_store.queue_stats(PROJECT, queue, floor)
            seconds.append(call.seconds)
            total = total + call.usage
        usage = total.scaled(1 / STATS_CALLS)
        rows.append([f"stats call at depth {depth:,}", round(usage.total_requests, 2),
                     usage.breakdown(), round(usage.rru, 2), round(usage.wru, 2),
                     round(usage.failed_conditions, 2),
                     round(common.median(seconds) * 1000, 1)])
        print(f"  stats: {counts}; oldest {oldest.id if oldest else None}, "
              f"newest {newest.id if newest else None}")
    print()
    return rows, queues


def main():
    global DEPTHS
    if len(sys.argv) == 3:  # a quick check of the script: python -m bench.lifecycle 100 2000
        DEPTHS = tuple(int(arg) for arg in sys.argv[1:])
    db = common.start_dynamodb()
    started = time.perf_counter()
    try:
        common.create_tables()
        meter = common.install_meter()
        from bench import workload
        from chalicelib.storage.models import MessageRecord
        from local.clock import FakeClock
        clock = FakeClock(running=True).install()
        body, posted, claimed = workload.sized_body()
        print("Engine: DynamoDB Local (in memory) at", db.endpoint)
        print(common.machine_load())
        print(common.code_version())
        print(f"Message item: {posted} B as posted, {claimed} B as claimed")
        print()
        reader = common.StreamReader(common.boto_client("dynamodb", db.endpoint),
                                     common.boto_client("dynamodbstreams", db.endpoint),
                                     MessageRecord.Meta.table_name)
        sweep_section(meter, clock, reader, body)
        rows, queues = stats_section(meter, reader, body)
        rows.append(idle_sweep_with_live_head(meter, clock, queues))
        common.print_table(HEADERS, rows, title="Stats counters (ms include reading the "
                                                "stream), stats calls (median ms), and an "
                                                "idle sweep over live queues")
        clock.restore()
        print(common.machine_load())
    finally:
        db.stop()
    print(f"total run time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

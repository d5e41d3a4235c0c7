"""Messages per second through their whole life, over real HTTP, against the
local runner (Chalice's local server + DynamoDB Local, in memory).

    .venv/bin/python -m bench.throughput      # ~1-2 minutes
    .venv/bin/python -m bench.throughput --reference-zaqar   # then the same against a
                                              # Zaqar 23.0.1 on Redis started here (~+1 min)
    .venv/bin/python -m bench.throughput --peer http://127.0.0.1:8889   # or any Zaqar v2

4 producer threads post batches of 10 while 8 worker threads claim 10 and
delete each claimed message with its claim id, until 2,000 messages have
been posted and deleted (or 120 s have passed, whatever happens). One
requests.Session per thread; only 127.0.0.1.

Everything runs on this machine: the client threads, the runner (one Python
process, a thread per request) and DynamoDB Local (a JVM) share its cores.
Reference: Zaqar 23.0.1 on Redis carries about 430-520 messages/s on this
kind of 2-core machine. With a peer, the runner is stopped and the same
workload runs against the peer (noauth: X-Project-ID), then a table puts the
two side by side with this service's figure ÷ the peer's.

After each run, one client alone does 30 lives one after the other (post
10, claim 10, delete each): the calls' latency with no other request queueing
for the CPU.

Then, with the runner stopped, the engine's own ceiling: a fresh DynamoDB
Local and the same threads doing only the writes no message life can do
without (a BatchWriteItem of 10 to post, a conditional UpdateItem to claim,
a DeleteItem), through bare boto3: no HTTP, no service code, no reads.
"""
import argparse
import os
import threading
import time
import uuid
from collections import defaultdict
from urllib.parse import urlsplit

import requests

from bench import common, reference_zaqar
from local.launch import Launched

PRODUCERS = 4
WORKERS = 8
TOTAL = 2_000
BATCH = 10
TIME_LIMIT_S = 120
ALONE_LIVES = 30
QUEUE = "throughput"
PROJECT = "bench"
RUNNER_CALIBRATION = ("GET /v2/ping (no DynamoDB call)", "GET /v2/queues/<q> (one GetItem)")
PEER_CALIBRATION = ("GET /v2/ping", "GET /v2/queues/<q>")
# The same body as bench/cost.py: a message item of about 1 KB.
BODY = {"event": "bench", "payload": "x" * 809}


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = defaultdict(list)   # operation -> seconds
        self.statuses = defaultdict(lambda: defaultdict(int))
        self.posted = 0
        self.deleted = 0
        self.first_post = None
        self.last_delete = None
        self.errors = []

    def span(self):
        """Seconds from the first post to the last delete (or to now)."""
        return (self.last_delete or time.perf_counter()) - self.first_post

    def messages_per_second(self):
        return self.deleted / self.span()

    def record(self, operation, seconds, status):
        with self.lock:
            self.latency[operation].append(seconds)
            self.statuses[operation][status] += 1


def headers():
    return {"Client-ID": str(uuid.uuid4()), "X-Project-ID": PROJECT,
            "Content-Type": "application/json"}


def timed(results, session, operation, method, url, **kwargs):
    started = time.perf_counter()
    answer = session.request(method, url, timeout=30, **kwargs)
    results.record(operation, time.perf_counter() - started, answer.status_code)
    return answer


def producer(base, queue, results, batches, deadline):
    session = requests.Session()
    session.headers.update(headers())
    document = {"messages": [{"body": BODY, "ttl": 3600} for _ in range(BATCH)]}
    while time.monotonic() < deadline:
        with results.lock:
            if batches["left"] <= 0:
                return
            batches["left"] -= 1
            if results.first_post is None:
                results.first_post = time.perf_counter()
        answer = timed(results, session, "post 10", "POST",
                       f"{base}/v2/queues/{queue}/messages", json=document)
        if answer.status_code == 201:
            with results.lock:
                results.posted += len(answer.json()["resources"])
        else:
            with results.lock:
                batches["left"] += 1  # try that batch again
                results.errors.append(f"post {answer.status_code} {answer.text[:200]}")


def worker(base, queue, results, deadline):
    session = requests.Session()
    session.headers.update(headers())
    claim = {"ttl": 60, "grace": 60}
    while time.monotonic() < deadline:
        with results.lock:
            if results.deleted >= TOTAL:
                return
        answer = timed(results, session, "claim 10", "POST",
                       f"{base}/v2/queues/{queue}/claims?limit=10", json=claim)
        if answer.status_code == 204:
            # Nothing free: the operation is recorded apart, and the worker
            # waits a little as a polling client would.
            with results.lock:
                results.latency["claim (empty)"].append(results.latency["claim 10"].pop())
            time.sleep(0.05)
            continue
        if answer.status_code != 201:
            with results.lock:
                results.errors.append(f"claim {answer.status_code} {answer.text[:200]}")
            continue
        for message in answer.json()["messages"]:
            # The href carries ?claim_id=...
            gone = timed(results, session, "delete 1 with claim id", "DELETE",
                         base + message["href"])
            with results.lock:
                if gone.status_code == 204:
                    results.deleted += 1
                    results.last_delete = time.perf_counter()
                else:
                    results.errors.append(f"delete {gone.status_code} {gone.text[:200]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    peer = parser.add_mutually_exclusive_group()
    peer.add_argument("--peer", metavar="URL",
                      help="then the same workload against this Zaqar v2 endpoint (noauth, "
                           "its root serving /v2; 127.0.0.1 only)")
    peer.add_argument("--reference-zaqar", action="store_true",
                      help="then the same workload against a Zaqar 23.0.1 on Redis started "
                           "here (bench/reference_zaqar.py)")
    arguments = parser.parse_args(argv)
    if arguments.peer and urlsplit(arguments.peer).hostname != "127.0.0.1":
        parser.error("--peer: only 127.0.0.1 is ever a target")
    ours = measure_runner()
    theirs, peer_name = None, "peer"
    if arguments.peer:
        print(f"\nPeer: {arguments.peer.rstrip('/')}")
        print(common.machine_load())
        theirs = measure(arguments.peer.rstrip("/"), {"client (this process)": os.getpid()},
                         f"{QUEUE}-{uuid.uuid4().hex[:8]}", calibration=PEER_CALIBRATION)
    elif arguments.reference_zaqar:
        started = time.perf_counter()
        with reference_zaqar.ReferenceZaqar() as zaqar:
            print(f"\nReference: {zaqar.url} (Zaqar {reference_zaqar.ZAQAR_VERSION} on Redis, "
                  f"uwsgi 1 process x 4 threads, noauth), "
                  f"up in {time.perf_counter() - started:.1f} s")
            print(common.machine_load())
            peer_name = f"Zaqar {reference_zaqar.ZAQAR_VERSION} + Redis"
            theirs = measure(zaqar.url, {"client (this process)": os.getpid(), **zaqar.pids},
                             QUEUE, calibration=PEER_CALIBRATION)
    if theirs is not None:
        report_side_by_side(ours, theirs, peer_name)
    engine_ceiling()


def measure_runner():
    started = time.perf_counter()
    runner = Launched(startup_timeout=90)
    try:
        print(f"Runner: {runner.url} (python -m local.runner --in-memory, DynamoDB Local), "
              f"up in {time.perf_counter() - started:.1f} s")
        print(common.machine_load())
        print(common.code_version())
        # Where the CPU goes: this process (the client threads), the runner's
        # Python process and its DynamoDB Local JVM.
        processes = {"client (this process)": os.getpid(),
                     "runner (Python)": runner.process.pid}
        for pid in common.child_pids(runner.process.pid):
            processes[f"DynamoDB Local (pid {pid})"] = pid
        return measure(runner.url, processes, QUEUE, calibration=RUNNER_CALIBRATION,
                       note=" (reference: Zaqar 23.0.1 on Redis ~430-520 messages/s)")
    finally:
        runner.stop()


def measure(base, processes, queue, calibration, note=""):
    """The workload against one service on `base`, in `queue` (created, and
    deleted afterwards), with the CPU of `processes` ({name: pid}); prints
    it all and returns the Results."""
    setup = requests.Session()
    setup.headers.update(headers())
    created = setup.put(f"{base}/v2/queues/{queue}", json={})
    assert created.status_code in (201, 204), (created.status_code, created.text)
    calibrate(base, setup, queue, calibration)
    results = Results()
    batches = {"left": TOTAL // BATCH}
    cpu_before = {name: common.cpu_seconds(pid) for name, pid in processes.items()}
    deadline = time.monotonic() + TIME_LIMIT_S
    threads = ([threading.Thread(target=producer, args=(base, queue, results, batches, deadline))
                for _ in range(PRODUCERS)]
               + [threading.Thread(target=worker, args=(base, queue, results, deadline))
                  for _ in range(WORKERS)])
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu_used = {name: common.cpu_seconds(pid) - cpu_before[name]
                for name, pid in processes.items()}
    report(results, note)
    report_cpu(cpu_used, results)
    print(common.machine_load())
    results.alone = alone(base, queue)
    setup.delete(f"{base}/v2/queues/{queue}")
    return results


def alone(base, queue, lives=ALONE_LIVES):
    """The same calls from one client, one after the other, on the emptied
    queue: their latency when no other request queues for the CPU."""
    results = Results()
    session = requests.Session()
    session.headers.update(headers())
    document = {"messages": [{"body": BODY, "ttl": 3600} for _ in range(BATCH)]}
    url = f"{base}/v2/queues/{queue}"
    for _ in range(lives):
        timed(results, session, "post 10", "POST", f"{url}/messages", json=document)
        claimed = timed(results, session, "claim 10", "POST", f"{url}/claims?limit=10",
                        json={"ttl": 60, "grace": 60})
        for message in claimed.json()["messages"] if claimed.status_code == 201 else ():
            timed(results, session, "delete 1 with claim id", "DELETE", base + message["href"])
    rows = [[operation, len(values)]
            + [round(common.percentile(values, p) * 1000, 1) for p in (50, 90, 99)]
            for operation, values in results.latency.items()]
    common.print_table(["operation", "requests", "p50 ms", "p90 ms", "p99 ms"], rows,
                       title=f"One client alone, {lives} lives one after the other")
    return results


def engine_ceiling(total=1_000):
    """Messages/s when each message costs only its three unavoidable writes."""
    from local import dynamodb_local
    db = dynamodb_local.start()
    try:
        common.set_environment(db.endpoint)  # dummy credentials, local endpoint
        client = common.boto_client("dynamodb", db.endpoint)
        table = "ceiling"
        client.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pq", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pq", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
        body = {"S": common.dumps(BODY)}
        lock = threading.Lock()

        def key(n):
            return {"pq": {"S": QUEUE}, "sk": {"S": f"m#{n:016x}"}}

        def life(batches):
            own = common.boto_client("dynamodb", db.endpoint)
            while True:
                with lock:
                    batch = next(batches, None)
                if batch is None:
                    return
                numbers = range(batch * BATCH, (batch + 1) * BATCH)
                own.batch_write_item(RequestItems={table: [
                    {"PutRequest": {"Item": dict(key(n), b=body)}} for n in numbers]})
                for n in numbers:
                    own.update_item(TableName=table, Key=key(n), UpdateExpression="SET c = :c",
                                    ConditionExpression="attribute_exists(sk)",
                                    ExpressionAttributeValues={":c": {"S": "claim"}})
                    own.delete_item(TableName=table, Key=key(n))

        def run(first_batch):
            batches = iter(range(first_batch, first_batch + total // BATCH))
            threads = [threading.Thread(target=life, args=(batches,))
                       for _ in range(PRODUCERS + WORKERS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        run(0)  # warms the JVM up, as the throughput run had
        cpu_before = common.cpu_seconds(db.process.pid)
        started = time.perf_counter()
        run(total // BATCH)
        span = time.perf_counter() - started
        cpu = common.cpu_seconds(db.process.pid) - cpu_before
        print(f"\nEngine ceiling: {PRODUCERS + WORKERS} threads, {total:,} messages (after as "
              f"many to warm up), each "
              f"only posted (BatchWriteItem of {BATCH}), claimed (1 conditional UpdateItem) "
              f"and deleted (1 DeleteItem) through bare boto3 on a fresh DynamoDB Local: "
              f"{total / span:,.0f} messages/s, DynamoDB Local "
              f"{cpu * 1000 / total:.1f} CPU-ms per message")
    finally:
        db.stop()


def calibrate(base, session, queue, names, seconds=3):
    """The floor under every request: GET /v2/ping and GET of the queue from
    one thread, for a few seconds each; `names` are their labels."""
    for name, url in zip(names, (f"{base}/v2/ping", f"{base}/v2/queues/{queue}")):
        latencies, stop = [], time.perf_counter() + seconds
        while time.perf_counter() < stop:
            started = time.perf_counter()
            session.get(url, timeout=10)
            latencies.append(time.perf_counter() - started)
        print(f"{name}: p50 {common.median(latencies) * 1000:.1f} ms, "
              f"{len(latencies) / seconds:.0f} requests/s from one thread")


def report_cpu(cpu_used, results):
    span = results.span()
    rows = [[name, round(seconds, 1), round(seconds / span, 2),
             round(seconds * 1000 / max(1, results.deleted), 2)]
            for name, seconds in cpu_used.items()]
    total = sum(cpu_used.values())
    rows.append(["all together", round(total, 1), round(total / span, 2),
                 round(total * 1000 / max(1, results.deleted), 2)])
    common.print_table(["process", "CPU s", "cores busy", "CPU ms per message"], rows,
                       title=f"CPU during the run ({os.cpu_count()} cores; other processes "
                             "on the machine are not counted)")


def report(results, note=""):
    print(f"{PRODUCERS} producers posting batches of {BATCH}, {WORKERS} workers claiming "
          f"{BATCH} and deleting each with its claim id; {TOTAL:,} messages")
    finished = results.deleted >= TOTAL
    span = results.span()
    print(f"posted {results.posted:,}, deleted {results.deleted:,}"
          + ("" if finished else f"  (STOPPED at the {TIME_LIMIT_S} s limit)"))
    print(f"whole life (first post to last delete): {span:.1f} s -> "
          f"{results.deleted / span:,.0f} messages/s{note}")
    print()
    rows = []
    for operation in ("post 10", "claim 10", "claim (empty)", "delete 1 with claim id"):
        values = results.latency.get(operation, [])
        if not values:
            continue
        rows.append([operation, len(values)]
                    + [round(common.percentile(values, p) * 1000, 1) for p in (50, 90, 99)]
                    + [round(max(values) * 1000, 1),
                       round(len(values) / span, 1),
                       " ".join(f"{code}x{n}" for code, n in
                                sorted(results.statuses[operation].items()))])
    common.print_table(["operation", "requests", "p50 ms", "p90 ms", "p99 ms", "max ms",
                        "per s", "statuses"], rows, title="Latency per operation")
    claims = len(results.latency.get("claim 10", []))
    if claims:
        print(f"messages per non-empty claim: {results.deleted / claims:.2f} (limit {BATCH})")
    if results.errors:
        print(f"{len(results.errors)} errors, first ones:")
        for error in results.errors[:5]:
            print("  ", error)


def report_side_by_side(ours, theirs, peer_name):
    """The two runs' headline figures, and this service's ÷ the peer's."""
    def row(name, figure, scale=1):
        mine, peer = figure(ours), figure(theirs)
        return [name, round(mine * scale, 1), round(peer * scale, 1),
                round(mine / peer, 2) if mine and peer else None]

    def latency(operation, p):
        return lambda results: common.percentile(results.latency.get(operation, []), p) or 0

    def alone_latency(operation, p):
        return lambda results: latency(operation, p)(results.alone)

    print()
    common.print_table(
        ["figure", "this service", peer_name, "this ÷ peer"],
        [row("whole life, messages/s", Results.messages_per_second),
         row("post 10, p50 ms", latency("post 10", 50), 1000),
         row("claim 10, p50 ms", latency("claim 10", 50), 1000),
         row("claim 10, p99 ms", latency("claim 10", 99), 1000),
         row("delete 1 with claim id, p50 ms", latency("delete 1 with claim id", 50), 1000),
         row("one client alone: post 10, p50 ms", alone_latency("post 10", 50), 1000),
         row("one client alone: claim 10, p50 ms", alone_latency("claim 10", 50), 1000),
         row("one client alone: claim 10, p99 ms", alone_latency("claim 10", 99), 1000)],
        title=f"Side by side: the same workload, one after the other in this run "
              f"({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()

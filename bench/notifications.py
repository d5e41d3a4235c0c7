"""Notification latency and cost, in the local runner.

    .venv/bin/python bench/notifications.py [--messages 20] [--subscribers 1,10,100]

Runs what `python -m local.runner` runs, in this process (DynamoDB Local when
Java is there, else moto; the app with the dev stage's environment; its HTTP
API; the stream pollers and schedules), and a webhook receiver on 127.0.0.1.
For each number of subscribers it subscribes that many webhooks to a queue,
then posts messages one at a time through the HTTP API, each once the last
one has reached every subscriber, and prints:

* the latency from the post request to each webhook's arrival (p50, p95);
* the work of the stream function per notification (one message to one
  subscriber): its DynamoDB calls and capacity units, its invocations and
  their run time;
* the retry worker's work per run when nothing is due: what it costs every
  minute on AWS, notifications or not.

Work is told apart by thread: each function's trigger thread and its
delivery pool (chalicelib/notify names them); the API and the stats
function run on others.
"""
import argparse
import functools
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import botocore.client
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from local import runner  # noqa: E402
from local.triggers import start_triggers, stop_triggers  # noqa: E402
from local.webhook_receiver import WebhookReceiver  # noqa: E402

# Function -> the threads it runs on: its local trigger thread, its pool.
THREADS = {"notify_subscribers": ("stream-notify_subscribers", "notify-stream"),
           "retry_notifications": ("schedule-retry_notifications", "notify-retry")}
READS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
HEADERS = {"Client-ID": str(uuid.uuid4()), "X-Project-ID": "bench-notifications"}


class Work:
    """What one function did: DynamoDB calls and capacity, invocations and
    their run time."""

    def __init__(self):
        self.calls = Counter()
        self.read_units = self.write_units = 0.0
        self.invocations = 0
        self.seconds = 0.0


class Meter:
    def __init__(self):
        self.lock = threading.Lock()
        self.work = {name: Work() for name in THREADS}

    @staticmethod
    def function():
        """The function the current thread works for, or None."""
        thread = threading.current_thread().name
        return next((name for name, prefixes in THREADS.items()
                     if thread.startswith(prefixes)), None)

    def dynamodb_call(self, function, operation, response):
        consumed = response.get("ConsumedCapacity") or []
        units = sum(item.get("CapacityUnits", 0)
                    for item in (consumed if isinstance(consumed, list) else [consumed]))
        with self.lock:
            work = self.work[function]
            work.calls[operation] += 1
            if operation in READS:
                work.read_units += units
            elif operation in WRITES:
                work.write_units += units

    def invocation(self, function, seconds):
        with self.lock:
            self.work[function].invocations += 1
            self.work[function].seconds += seconds

    def reset(self):
        with self.lock:
            self.work = {name: Work() for name in THREADS}


def meter_dynamodb(meter):
    """Count the DynamoDB calls the functions make, asking DynamoDB for the
    capacity each one consumed."""
    original = botocore.client.BaseClient._make_api_call

    def metered(client, operation, params):
        function = (Meter.function()
                    if client.meta.service_model.service_name == "dynamodb" else None)
        if function and operation in READS | WRITES:
            params = dict(params, ReturnConsumedCapacity="TOTAL")
        response = original(client, operation, params)
        if function:
            meter.dynamodb_call(function, operation, response)
        return response
    botocore.client.BaseClient._make_api_call = metered


def meter_functions(app, meter):
    for name in THREADS:
        handler = app.handler_map[name]

        @functools.wraps(handler)
        def timed(event, context, handler=handler, name=name):
            started = time.perf_counter()
            try:
                return handler(event, context)
            finally:
                meter.invocation(name, time.perf_counter() - started)
        app.handler_map[name] = timed


def arrivals(receiver, n):
    """When message n first reached each subscriber: {path: wall time}."""
    first = {}
    for request in receiver.requests():
        if request["json"]["body"]["n"] == n:
            first.setdefault(request["path"], request["wall"])
    return first


def start_service():
    """The local runner's parts, in this process; returns (API URL, stop)."""
    storage = runner.start_storage("127.0.0.1", 0, None)
    runner.configure_environment("dev", storage.endpoint)
    from local.tables import create_tables
    create_tables()
    app, config = runner.load_app("dev")
    meter = Meter()
    meter_functions(app, meter)
    meter_dynamodb(meter)
    workers = start_triggers(app, config, runner.aws_client("dynamodb", storage.endpoint),
                             runner.aws_client("dynamodbstreams", storage.endpoint),
                             schedule_interval=1.0, region=runner.REGION)
    server = runner.create_http_server(app, config, "127.0.0.1", 0)
    threading.Thread(target=server.server.serve_forever, daemon=True).start()
    host, port = server.server.server_address[:2]

    def stop():
        server.server.shutdown()
        stop_triggers(workers)
        storage.stop()
    print(f"storage: {storage.description}", file=sys.stderr)
    return f"http://{host}:{port}", meter, stop


def run(api, meter, receiver, subscribers, messages):
    queue = f"{api}/v2/queues/bench-{subscribers}"
    for i in range(subscribers):
        requests.post(f"{queue}/subscriptions", headers=HEADERS, timeout=10,
                      json={"subscriber": f"{receiver.url}/s{i}"}).raise_for_status()
    latencies = []
    base = subscribers * 1000  # message numbers unique across runs
    meter.reset()
    for n in range(base, base + messages):
        sent = time.time()
        requests.post(f"{queue}/messages", headers=HEADERS, timeout=10,
                      json={"messages": [{"body": {"n": n}}]}).raise_for_status()
        deadline = time.monotonic() + 30
        while len(arrivals(receiver, n)) < subscribers and time.monotonic() < deadline:
            time.sleep(0.005)
        latencies += [arrived - sent for arrived in arrivals(receiver, n).values()]
    time.sleep(1.5)  # let the stream function finish its last batch
    notifications = subscribers * messages
    work = meter.work["notify_subscribers"]
    return {
        "subscribers": subscribers, "notifications": notifications,
        "delivered": len(latencies),
        "p50_ms": 1000 * common.median(latencies),
        "p95_ms": 1000 * common.percentile(latencies, 95),
        "dynamodb_calls": sum(work.calls.values()) / notifications,
        "calls": dict(work.calls),
        "rru": work.read_units / notifications, "wru": work.write_units / notifications,
        "invocations": work.invocations / notifications,
        "function_ms": 1000 * work.seconds / notifications,
        "retry_worker": meter.work["retry_notifications"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--subscribers", default="1,10,100")
    args = parser.parse_args(argv)
    api, meter, stop = start_service()
    receiver = WebhookReceiver()
    try:
        results = [run(api, meter, receiver, int(count), args.messages)
                   for count in args.subscribers.split(",")]
    finally:
        stop()
    print("subscribers  delivered  latency p50    p95 | stream function per notification:"
          " DynamoDB calls   RRU    WRU  invocations  run ms")
    for r in results:
        print(f"{r['subscribers']:>11}  {r['delivered']:>4}/{r['notifications']:<4}"
              f" {r['p50_ms']:>8.0f} ms {r['p95_ms']:>5.0f} ms |"
              f" {r['dynamodb_calls']:>48.3f} {r['rru']:>6.3f} {r['wru']:>6.3f}"
              f" {r['invocations']:>12.3f} {r['function_ms']:>7.2f}")
    for r in results:
        print(f"stream function's DynamoDB calls, {r['subscribers']} subscribers: {r['calls']}")
    idle = [r["retry_worker"] for r in results]
    runs = sum(work.invocations for work in idle)
    if runs:
        print(f"retry worker, per run with nothing due: "
              f"{sum(sum(w.calls.values()) for w in idle) / runs:.1f} DynamoDB calls, "
              f"{sum(w.read_units for w in idle) / runs:.2f} RRU, "
              f"{1000 * sum(w.seconds for w in idle) / runs:.1f} ms")


if __name__ == "__main__":
    main()

"""How long a post takes as its batch grows, to choose the per-post limit.

A post writes its batch with one BatchWriteItem per 25 messages, one after
another, and must land within POST_ABORT_MS (storage/messages.py), well
inside API Gateway's 29 s and Lambda's 30 s. For each batch size this posts
small messages (the kind that fit many into the 256 KB body limit) through
the message action on DynamoDB Local, in process, and prints the median
time, the DynamoDB requests, and the time left for the writes' round trips
on AWS if each took 25 ms under load (an assumption, printed as such).

    .venv/bin/python -m bench.post_size          # ~1 minute on 2 cores
"""
import json
import time

from bench import common

SIZES = (10, 100, 500, 1000, 2000, 5000, 15000)
RUNS = 3
AWS_ROUND_TRIP_S = 0.025  # assumed per BatchWriteItem under load, not measured here


def main():
    db = common.start_dynamodb()
    try:
        common.create_tables()
        meter = common.install_meter()
        from bench import workload
        from chalicelib.actions import messages
        from chalicelib.errors import ServiceUnavailable
        from chalicelib.storage.messages import POST_ABORT_MS
        ctx = workload.context("bench", workload.PRODUCER)
        print(common.machine_load())
        print(common.code_version())
        rows = []
        for size in SIZES:
            # {"body":n}: 15,000 of them are about 200 KB of JSON, under the limit.
            document = {"messages": [{"body": n} for n in range(size)]}
            length = len(json.dumps(document, separators=(",", ":")))
            seconds, aborted = [], 0
            for run in range(RUNS):
                with meter.measure() as measured:
                    try:
                        messages.post(ctx, f"post-{size}-{run}", document, size=length)
                    except ServiceUnavailable:
                        aborted += 1
                seconds.append(measured.seconds)
            requests = measured.usage.total_requests
            batch_writes = measured.usage.requests["BatchWriteItem"]
            rows.append([size, round(common.median(seconds), 2),
                         round(common.median(seconds) * 1000 / size, 2), requests,
                         round(batch_writes * AWS_ROUND_TRIP_S, 1),
                         "yes" if max(seconds) * 1000 < POST_ABORT_MS / 2 else "no",
                         aborted])
        common.print_table(
            ["messages", "median s", "ms/message", "requests",
             f"AWS writes s @{AWS_ROUND_TRIP_S * 1000:.0f} ms", "< half the abort window",
             f"aborted of {RUNS}"],
            rows, title=f"One post of N messages (abort window {POST_ABORT_MS / 1000:.0f} s)")
        print(common.machine_load())
    finally:
        db.stop()


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"total run time {time.perf_counter() - started:.0f} s")

"""What authentication costs per request: calls to Keystone, DynamoDB requests
and CPU, on a cache hit and on a miss, against a real Keystone
(local/keystone.py) and DynamoDB Local.

    .venv/bin/python -m bench.auth [requests]

Measured in this process, on the code API Gateway and the local runner run:
the authorizer (auth.gateway.authorize) alone, and a whole REST request
(GET /v2/queues through the Chalice test client) without authentication
and with a Keystone token the view checks itself. CPU is this process's
(time.process_time): Keystone's own work is in its process, not counted.
"""
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

from bench import common

CLIENT_ID = "3381af92-2b9e-11e3-b191-71861300734c"


def counting_keystone_calls():
    """Count the service's calls to Keystone: [calls]."""
    from chalicelib import keystone_api
    calls, original = [0], keystone_api._call

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)
    keystone_api._call = counted
    return calls


def measure(label, runs, call, keystone_calls, before_each=None):
    """A table row: per call, Keystone calls, DynamoDB requests, CPU and wall ms."""
    calls_before = keystone_calls[0]
    cpu, wall = 0.0, 0.0
    with common.METER.measure() as metered:
        for _ in range(runs):
            if before_each is not None:
                before_each()
            started_cpu, started_wall = time.process_time(), time.perf_counter()
            call()
            cpu += time.process_time() - started_cpu
            wall += time.perf_counter() - started_wall
    return [label, runs, (keystone_calls[0] - calls_before) / runs,
            metered.usage.total_requests / runs, f"{cpu / runs * 1000:.3f}",
            f"{wall / runs * 1000:.3f}"]


def main(argv):
    runs = int(argv[0]) if argv else 500
    db = common.start_dynamodb()
    keystone = None
    try:
        common.create_tables()
        common.install_meter()
        from local import keystone as local_keystone
        keystone = local_keystone.start_from_template(Path(tempfile.mkdtemp()) / "keystone")
        user = local_keystone.USERS["alpha-member"]
        token, _ = local_keystone.issue_token(keystone.url, user.name, user.password,
                                              user.project)
        rows = bench_rows(keystone.url, token, runs)
    finally:
        if keystone is not None:
            keystone.stop()
        db.stop()
    common.print_table(["what", "calls", "Keystone calls/call", "DynamoDB requests/call",
                        "CPU ms/call", "wall ms/call"], rows,
                       title=f"Authentication per request ({common.code_version()}, "
                             f"load {common.machine_load()})")


def bench_rows(keystone_url, token, runs):
    from chalice.test import Client

    import app as app_module
    from chalicelib import config, rest
    from chalicelib.auth import gateway
    from chalicelib.auth import keystone as keystone_mode
    keystone_calls = counting_keystone_calls()
    stage = config.get_settings()
    settings = dataclasses.replace(stage, auth_strategy="keystone", keystone_url=keystone_url)
    event = {"type": "REQUEST", "headers": {"X-Auth-Token": token},
             "methodArn": "arn:aws:execute-api:local:0:api/v2/GET/v2/queues"}
    rows = [
        measure("authorizer, cache miss", max(runs // 10, 10),
                lambda: gateway.authorize(event, settings), keystone_calls,
                before_each=keystone_mode._believed.clear),
        measure("authorizer, cache hit", runs, lambda: gateway.authorize(event, settings),
                keystone_calls),
    ]
    headers = {"Client-ID": CLIENT_ID, "X-Auth-Token": token, "X-Project-ID": "bench"}
    with Client(app_module.app, stage_name="dev", project_dir=str(common.ROOT)) as client:
        def list_queues():
            answer = client.http.get("/v2/queues", headers=headers)
            assert answer.status_code == 200, answer.body
        rest.get_settings = lambda: dataclasses.replace(stage, auth_strategy="noauth")
        rows.append(measure("GET /v2/queues, noauth", runs, list_queues, keystone_calls))
        rest.get_settings = lambda: settings
        headers.pop("X-Project-ID")  # the token's
        rows.append(measure("GET /v2/queues, keystone (hit)", runs, list_queues,
                            keystone_calls))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])

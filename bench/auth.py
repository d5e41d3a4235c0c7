"""What authentication costs per request: calls to Keystone or to the JWT
issuer's JWKS, DynamoDB requests and CPU, on a cache hit and on a miss, for
each mode: a Keystone token (a real Keystone, local/keystone.py), an API key
(its item in DynamoDB Local) and a JWT (local/oidc_issuer.py's, RS256 with
a 2048-bit key).

    .venv/bin/python -m bench.auth [requests]

Measured in this process, on the code API Gateway and the local runner run:
the authorizer (auth.gateway.authorize) alone, and a whole REST request
(GET /v2/queues through the Chalice test client) without authentication
and with each credential the view checks itself. CPU is this process's
(time.process_time): Keystone's and the issuer's own work is in theirs
(the issuer's thread aside), not counted.
"""
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

from bench import common

CLIENT_ID = "3381af92-2b9e-11e3-b191-71861300734c"


def counting_identity_calls():
    """Count the service's calls to Keystone and JWKS fetches: [calls]."""
    from chalicelib import keystone_api
    from chalicelib.auth import oidc
    calls = [0]

    def counting(original):
        def counted(*args, **kwargs):
            calls[0] += 1
            return original(*args, **kwargs)
        return counted
    keystone_api._call = counting(keystone_api._call)
    oidc._read_jwks = counting(oidc._read_jwks)
    return calls


def measure(label, runs, call, identity_calls, before_each=None):
    """A table row: per call, Keystone/JWKS calls, DynamoDB requests, CPU and wall ms."""
    calls_before = identity_calls[0]
    cpu, wall = 0.0, 0.0
    with common.METER.measure() as metered:
        for _ in range(runs):
            if before_each is not None:
                before_each()
            started_cpu, started_wall = time.process_time(), time.perf_counter()
            call()
            cpu += time.process_time() - started_cpu
            wall += time.perf_counter() - started_wall
    return [label, runs, (identity_calls[0] - calls_before) / runs,
            metered.usage.total_requests / runs, f"{cpu / runs * 1000:.3f}",
            f"{wall / runs * 1000:.3f}"]


def main(argv):
    runs = int(argv[0]) if argv else 500
    db = common.start_dynamodb()
    keystone = issuer = None
    try:
        common.create_tables()
        common.install_meter()
        from local import keystone as local_keystone
        from local.oidc_issuer import Issuer
        keystone = local_keystone.start_from_template(Path(tempfile.mkdtemp()) / "keystone")
        issuer = Issuer()
        user = local_keystone.USERS["alpha-member"]
        token, _ = local_keystone.issue_token(keystone.url, user.name, user.password,
                                              user.project)
        rows = bench_rows(keystone.url, token, issuer, runs)
    finally:
        if keystone is not None:
            keystone.stop()
        if issuer is not None:
            issuer.close()
        db.stop()
    common.print_table(["what", "calls", "Keystone/JWKS calls/call", "DynamoDB requests/call",
                        "CPU ms/call", "wall ms/call"], rows,
                       title=f"Authentication per request ({common.code_version()}, "
                             f"load {common.machine_load()})")


def bench_rows(keystone_url, token, issuer, runs):
    from chalice.test import Client

    import app as app_module
    from chalicelib import config, rest
    from chalicelib.auth import apikey, gateway, oidc
    from chalicelib.auth import keystone as keystone_mode
    from local.oidc_issuer import AUDIENCE
    identity_calls = counting_identity_calls()
    stage = config.get_settings()
    settings = dataclasses.replace(
        stage, auth_strategy="keystone,apikey,jwt", keystone_url=keystone_url,
        jwt_issuer=issuer.url, jwt_audience=AUDIENCE)
    key, _ = apikey.issue(settings, "bench", frozenset({"member"}), "bench", None)
    jwt = issuer.token(project="bench")
    misses = max(runs // 10, 10)

    def authorize(credential):
        event = {"type": "REQUEST", "headers": {"X-Auth-Token": credential},
                 "methodArn": "arn:aws:execute-api:local:0:api/v2/GET/v2/queues"}
        return lambda: gateway.authorize(event, settings)

    def forget_jwks():
        oidc._jwks.clear()
    rows = []
    for mode, credential, forget, miss in (
            ("keystone", token, keystone_mode._believed.clear, "cache miss"),
            ("apikey", key, apikey._believed.clear, "cache miss"),
            ("jwt", jwt, forget_jwks, "JWKS miss")):
        rows.append(measure(f"authorizer, {mode}, {miss}", misses, authorize(credential),
                            identity_calls, before_each=forget))
        hit = "cache hit" if mode != "jwt" else "JWKS cached (verified each call)"
        rows.append(measure(f"authorizer, {mode}, {hit}", runs, authorize(credential),
                            identity_calls))
    headers = {"Client-ID": CLIENT_ID, "X-Project-ID": "bench"}
    with Client(app_module.app, stage_name="dev", project_dir=str(common.ROOT)) as client:
        def list_queues():
            answer = client.http.get("/v2/queues", headers=headers)
            assert answer.status_code == 200, answer.body
        rest.get_settings = lambda: dataclasses.replace(stage, auth_strategy="noauth")
        rows.append(measure("GET /v2/queues, noauth", runs, list_queues, identity_calls))
        rest.get_settings = lambda: settings
        headers.pop("X-Project-ID")  # the credential's
        for mode, credential in (("keystone", token), ("apikey", key), ("jwt", jwt)):
            headers["X-Auth-Token"] = credential
            rows.append(measure(f"GET /v2/queues, {mode} (hit)", runs, list_queues,
                                identity_calls))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])

"""Schemathesis fuzzes the local runner from the OpenAPI description it
serves (GET /v2/openapi.json), over real HTTP, and every answer must hold to
that description: no 5xx, every status one the operation lists, every body
and required header as described.

The run is the schemathesis CLI (a child process) with its phases: coverage
(each schema's boundary and just-past-boundary values, each parameter left
out, undescribed methods, which must answer 405), fuzzing (hypothesis draws,
valid and invalid) and stateful (chains that follow the responses: a queue
created, messages posted to it, a claim made on them, read, renewed,
released). Draws are seeded, so every run sends the same requests (about
1,950, each a test case); the example counts keep a run to 93 s on a
2-core machine at a load of 10 (150 s at 16), less on a quiet one.

Before the run a queue is filled, and some of its messages claimed, and a
subscription made; the operations on one claim, message or subscription get
those real ids (from the config file), so their 200 bodies are checked too,
not only their 404s.

Every request carries Client-ID and X-Project-ID (the dev stage is noauth).
Subscribers are pinned to a loopback port where nothing listens: a drawn
http URL or mailto address would otherwise be delivered to, and only
127.0.0.1 may ever be a target.

This module is also the CLI's hooks module (SCHEMATHESIS_HOOKS): the
registrations below run in the child.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests
import schemathesis

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "3381af92-2b9e-11e3-b191-71861300734c"
PROJECT = "schemathesis"
WEBHOOK = "http://127.0.0.1:9/schemathesis"  # the discard port: nothing listens
PATCH_MEDIA_TYPE = "application/openstack-messaging-v2.0-json-patch"
CHECKS = ("not_a_server_error", "status_code_conformance", "response_schema_conformance",
          "response_headers_conformance", "unsupported_method")
FUZZ_EXAMPLES = 20  # per operation, and per mode (valid and invalid)
STATEFUL_EXAMPLES = 60
RUN_TIMEOUT_S = 300  # the deadline: a hung or crawling run fails
# Undescribed methods the coverage phase sends. Not TRACE nor QUERY: the
# local runner's HTTP server answers 501 to methods it has no handler for,
# which API Gateway never passes to the function.
CONFIG = """
[phases.coverage]
unexpected-methods = ["get", "put", "post", "delete", "patch"]

[phases.stateful]
max-steps = 8
generation.max-examples = {stateful}
"""
HELD_QUEUE = "schemathesis-held"  # far from any name the draws make
# Operations given a real resource: (operationId, the path parameter).
ON_HELD = (("get_claim", "claim_id"), ("update_claim", "claim_id"),
           ("get_message", "message_id"), ("get_subscription", "subscription_id"),
           ("update_subscription", "subscription_id"),
           ("confirm_subscription", "subscription_id"))

schemathesis.serializer.alias(PATCH_MEDIA_TYPE, "application/json")


@schemathesis.deserializer("application/json-home")
def json_home(ctx, response):
    return json.loads(response.content)


@schemathesis.hook
def before_call(context, case, kwargs):
    if isinstance(case.body, dict) and isinstance(case.body.get("subscriber"), str):
        case.body = {**case.body, "subscriber": WEBHOOK}


def held_resources(url):
    """A queue's message, claim (on most of its messages, for the longest
    time) and subscription: {path parameter: id}."""
    session = requests.Session()
    session.headers.update({"Client-ID": CLIENT_ID, "X-Project-ID": PROJECT})
    queue = f"{url}/v2/queues/{HELD_QUEUE}"
    posted = session.post(f"{queue}/messages", json={"messages": [
        {"body": {"n": n}, "ttl": 1209600} for n in range(25)]})
    assert posted.status_code == 201, posted.text
    claimed = session.post(f"{queue}/claims?limit=20", json={"ttl": 43200, "grace": 60})
    assert claimed.status_code == 201, claimed.text
    subscribed = session.post(f"{queue}/subscriptions", json={"subscriber": WEBHOOK})
    assert subscribed.status_code == 201, subscribed.text
    return {"message_id": posted.json()["resources"][-1].rsplit("/", 1)[1],
            "claim_id": claimed.headers["Location"].rsplit("/", 1)[1],
            "subscription_id": subscribed.json()["subscription_id"]}


def config_text(held):
    pinned = "".join(
        f'\n[[operations]]\ninclude-operation-id = "{operation}"\n'
        f'parameters = {{ "path.queue_name" = "{HELD_QUEUE}", '
        f'"path.{name}" = "{held[name]}" }}\n' for operation, name in ON_HELD)
    return CONFIG.format(stateful=STATEFUL_EXAMPLES) + pinned


def test_the_runner_answers_as_its_description_says(runner_url, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(config_text(held_resources(runner_url)))
    report = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
        "run", f"{runner_url}/v2/openapi.json", "--url", runner_url,
        "--checks", ",".join(CHECKS), "--max-examples", str(FUZZ_EXAMPLES),
        "--seed", "16", "--generation-database", "none", "--workers", "1",
        "--header", f"Client-ID: {CLIENT_ID}", "--header", f"X-Project-ID: {PROJECT}",
        "--request-timeout", "30", "--report", "json", "--report-json-path", str(report)]
    environment = dict(os.environ, SCHEMATHESIS_HOOKS="tests.e2e.test_schemathesis",
                       PYTHONPATH=str(ROOT))
    started = time.monotonic()
    # Run in tmp_path: the CLI leaves a cache (.schemathesis/) where it runs.
    run = subprocess.run(command, cwd=tmp_path, env=environment, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    summary = json.loads(report.read_text())
    assert summary["failures"] == [] and summary["errors"] == []
    assert summary["operations"]["tested"] == summary["operations"]["total"]
    assert {name: phase["status"] for name, phase in summary["phases"].items()
            if name != "examples"} == {"coverage": "success", "fuzzing": "success",
                                        "stateful": "success"}
    # The held claim and message were answered (2xx), so their bodies were checked.
    for operation in ("GET /v2/queues/{queue_name}/claims/{claim_id}",
                      "GET /v2/queues/{queue_name}/messages/{message_id}"):
        assert summary["valid_rates"][operation]["coverage"]["accepted"] > 0, operation
    generated = summary["test_cases"]["generated"]
    assert generated >= 1500, generated  # about 1,950: fewer means phases went missing
    print(f"schemathesis: {generated} test cases in {elapsed:.1f} s")

"""End-to-end fixtures: the local runner as a real HTTP server, and a local
DynamoDB for the trigger emulation.

Storage is DynamoDB Local, in memory, when Java is present; otherwise moto.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import moto
import pytest
import requests

from conftest import headers
from local import dynamodb_local

ROOT = Path(__file__).resolve().parents[2]
# Seconds. An idle 2-core machine serves within ~5 s; a busy one took 60.
STARTUP_TIMEOUT = 120


def _wait_until_serving(url, process, log_file):
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            answer = requests.get(f"{url}/v2/ping", headers=headers(), timeout=2)
            if answer.status_code == 204:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    log_file.seek(0)
    pytest.fail(f"the runner did not serve {url}/v2/ping:\n{log_file.read().decode()}")


def _stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Runner:
    """Where the runner under test listens (free ports picked up front), and
    the file that moves its clock."""

    def __init__(self, clock_file):
        self.port = dynamodb_local.free_port()
        self.ws_port = dynamodb_local.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.ws_port}"
        self.clock_file = clock_file
        self.offset = 0

    def advance(self, seconds):
        """Move the runner's clock forward (it never goes back)."""
        self.offset += seconds
        # Replaced whole: the runner must never read a half-written file.
        scratch = self.clock_file.with_suffix(".new")
        scratch.write_text(str(self.offset))
        os.replace(scratch, self.clock_file)


@pytest.fixture(scope="session")
def local_runner(tmp_path_factory):
    """`python -m local.runner` started on free ports, in memory; it has
    .url (HTTP), .ws_url (websocket) and .advance(seconds) (its clock)."""
    runner = Runner(tmp_path_factory.mktemp("runner") / "clock-offset")
    command = [sys.executable, "-m", "local.runner", "--host", "127.0.0.1",
               "--port", str(runner.port), "--ws-port", str(runner.ws_port),
               "--dynamodb-port", "0", "--in-memory", "--schedule-interval", "2",
               "--clock-file", str(runner.clock_file)]
    with tempfile.TemporaryFile() as log_file:
        process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL,
                                   stdout=log_file, stderr=subprocess.STDOUT,
                                   env=dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            _wait_until_serving(runner.url, process, log_file)
            yield runner
        finally:
            _stop(process)


@pytest.fixture(scope="session")
def runner_url(local_runner):
    return local_runner.url


@pytest.fixture(scope="session")
def runner_ws_url(local_runner):
    return local_runner.ws_url


@pytest.fixture(scope="module")
def dynamodb_endpoint():
    """A local DynamoDB for one test module: DynamoDB Local's endpoint, or
    None with moto mocking this process (no Java). Module scope, not session:
    moto's mock must be gone before other modules' tests start theirs."""
    if not dynamodb_local.java_available():
        with moto.mock_aws():
            yield None
        return
    with dynamodb_local.start() as db:
        yield db.endpoint

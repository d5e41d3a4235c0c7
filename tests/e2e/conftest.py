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
STARTUP_TIMEOUT = 90  # seconds; DynamoDB Local alone takes ~2-3 s on 2 cores


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


@pytest.fixture(scope="session")
def runner_url():
    """Base URL of `python -m local.runner` started on free ports, in memory."""
    port = dynamodb_local.free_port()
    command = [sys.executable, "-m", "local.runner", "--host", "127.0.0.1",
               "--port", str(port), "--dynamodb-port", "0",
               "--ws-port", str(dynamodb_local.free_port()), "--in-memory"]
    with tempfile.TemporaryFile() as log_file:
        process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL,
                                   stdout=log_file, stderr=subprocess.STDOUT,
                                   env=dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_until_serving(url, process, log_file)
            yield url
        finally:
            _stop(process)


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

"""Start the local runner as a child process, as the end-to-end tests and
the bench scripts use it: on free ports, DynamoDB Local in memory, served
once /v2/ping answers (204, or 401 when the runner asks for a token).

    with Launched("--schedule-interval", "2") as runner:
        requests.get(f"{runner.url}/v2/ping", headers=...)
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from local.dynamodb_local import free_port, stop_process

ROOT = Path(__file__).resolve().parent.parent
# Seconds. An idle 2-core machine serves within ~5 s; a busy one took 60.
STARTUP_TIMEOUT = 120
PING_HEADERS = {"Client-ID": "3381af92-2b9e-11e3-b191-71861300734c",
                "X-Project-ID": "launch"}


class RunnerFailed(RuntimeError):
    """The runner did not come up; the message holds its log."""


class Launched:
    """`python -m local.runner` with `options` (and `environment` added to
    this process's), its HTTP API at .url, its websocket API at .ws_url.
    With a `clock_file`, .advance(seconds) moves its clock forward."""

    def __init__(self, *options, environment=None, clock_file=None,
                 startup_timeout=STARTUP_TIMEOUT):
        self.port, self.ws_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.ws_port}"
        self.clock_file, self.offset = clock_file, 0
        command = [sys.executable, "-m", "local.runner", "--host", "127.0.0.1",
                   "--port", str(self.port), "--ws-port", str(self.ws_port),
                   "--dynamodb-port", "0", "--in-memory", *options]
        if clock_file is not None:
            command += ["--clock-file", str(clock_file)]
        self.log_file = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self.log_file,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1", **(environment or {})))
        try:
            self._wait(startup_timeout)
        except BaseException:  # a timeout, Ctrl-C...: no runner left behind
            self.stop()
            raise

    def _wait(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                answer = requests.get(f"{self.url}/v2/ping", headers=PING_HEADERS, timeout=2)
                if answer.status_code in (204, 401):
                    return
            except (requests.ConnectionError, requests.Timeout):
                # A busy machine's runner may take over 2 s to answer its
                # first ping: ask again.
                pass
            time.sleep(0.2)
        raise RunnerFailed(f"the runner did not serve {self.url}/v2/ping:\n{self.log_text()}")

    def advance(self, seconds):
        """Move the runner's clock forward (it never goes back). The file is
        replaced whole: the runner must never read it half-written."""
        self.offset += seconds
        scratch = self.clock_file.with_suffix(".new")
        scratch.write_text(str(self.offset))
        os.replace(scratch, self.clock_file)

    def log_text(self):
        self.log_file.seek(0)
        return self.log_file.read().decode(errors="replace")

    def stop(self):
        stop_process(self.process, 30)
        self.log_file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

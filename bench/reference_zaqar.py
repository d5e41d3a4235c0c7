"""A real Zaqar 23.0.1 on Redis on this machine, for side-by-side benchmarks
only (bench/throughput.py --reference-zaqar): never part of the tests.

    .venv/bin/python -m bench.reference_zaqar install   # idempotent
    .venv/bin/python -m bench.reference_zaqar serve     # prints its URL; Ctrl-C stops

Zaqar (`zaqar[redis]`) and uwsgi (pyuwsgi, a wheel) from PyPI in their own
virtualenv, .local/zaqar/venv (git-ignored); Debian's redis-server, installed
with apt-get when missing. Each start runs a fresh redis-server (no
persistence) and uwsgi serving Zaqar's WSGI app with 1 process x 4 threads,
as devstack runs it, both on free ports of 127.0.0.1 only. Zaqar is
configured noauth, unpooled, `unreliable` (Redis is not one of its "reliable"
stores), admin_mode off, with Redis as both message and management store and
the notifier in the message pipeline as devstack sets it.

From code:

    with ReferenceZaqar() as zaqar:
        requests.get(f"{zaqar.url}/v2/ping", headers=...)
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.common import child_pids
from local.dynamodb_local import _LIBC, _die_with_parent, free_port, stop_process

ROOT = Path(__file__).resolve().parent.parent
ZAQAR_VERSION = "23.0.1"
PYUWSGI_VERSION = "2.0.30.post1"
REQUIREMENTS = (f"zaqar[redis]=={ZAQAR_VERSION}", f"pyuwsgi=={PYUWSGI_VERSION}")
INSTALL_DIR = ROOT / ".local" / "zaqar"
VENV_DIR = INSTALL_DIR / "venv"
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 120  # seconds; an idle machine serves in a few
PING_HEADERS = {"Client-ID": "3381af92-2b9e-11e3-b191-71861300734c",
                "X-Project-ID": "reference"}


class ReferenceFailed(RuntimeError):
    """Zaqar or Redis could not be installed or started; the message holds
    the end of the log."""


def install():
    """The venv (once per requirements) and redis-server (once per machine);
    returns the venv's bin directory."""
    bin_dir = VENV_DIR / "bin"
    stamp = VENV_DIR / ".installed"
    wanted = "\n".join(REQUIREMENTS)
    if not (stamp.exists() and stamp.read_text() == wanted):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV_DIR)], check=True)
        subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", *REQUIREMENTS], check=True)
        stamp.write_text(wanted)
    if shutil.which("redis-server") is None:
        environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment)
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True,
                       env=environment)
    return bin_dir


def write_config(home, redis_port):
    """zaqar.conf where Zaqar's WSGI module looks for it: that module parses
    no arguments, so oslo.config finds only $HOME/.zaqar/zaqar.conf."""
    config = home / ".zaqar" / "zaqar.conf"
    config.parent.mkdir(parents=True, exist_ok=True)
    redis = f"redis://{HOST}:{redis_port}"
    config.write_text(f"""\
[DEFAULT]
# Empty: noauth, the project comes from X-Project-ID.
auth_strategy =
admin_mode = False
pooling = False
# Zaqar refuses to run on Redis unless reliability constraints are off.
unreliable = True

[drivers]
transport = wsgi
message_store = redis
management_store = redis

[drivers:message_store:redis]
uri = {redis}?dbid=0

[drivers:management_store:redis]
uri = {redis}?dbid=1

[storage]
# As devstack sets it: each post looks for the queue's subscriptions.
message_pipeline = zaqar.notification.notifier
""")
    return config


class ReferenceZaqar:
    """A running Redis and uwsgi; .url is Zaqar's root (it serves /v2),
    .pids its processes (uwsgi master, its worker, redis-server)."""

    def __init__(self):
        bin_dir = install()
        self.work_dir = Path(tempfile.mkdtemp(prefix="reference-zaqar-"))
        self.log_path = self.work_dir / "log"
        self.processes = []
        try:
            self._start(bin_dir)
        except BaseException:
            self.stop()
            raise

    def _start(self, bin_dir):
        redis_port, port = free_port(), free_port()
        self.url = f"http://{HOST}:{port}"
        with open(self.log_path, "ab") as log:
            def spawn(command, **options):
                # Their own session (a Ctrl-C reaches only `serve`, which
                # stops them); on Linux they die with this process too.
                process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, preexec_fn=_die_with_parent if _LIBC else None,
                    **options)
                self.processes.append(process)
                return process

            self.redis = spawn(["redis-server", "--bind", HOST, "--port", str(redis_port),
                           "--save", "", "--appendonly", "no", "--dir", str(self.work_dir)])
            self._wait(lambda: _redis_answers(redis_port), self.redis, "redis-server")
            write_config(self.work_dir, redis_port)
            self.uwsgi = spawn(
                [str(bin_dir / "uwsgi"), "--http-socket", f"{HOST}:{port}",
                 "--module", "zaqar.transport.wsgi.app:application",
                 "--master", "--processes", "1", "--threads", "4",
                 "--enable-threads", "--die-on-term", "--need-app",
                 # As devstack's uwsgi config: a plain http-socket closes
                 # every connection after its response, so clients must not
                 # keep it for the next request.
                 "--add-header", "Connection: close"],
                env=dict(os.environ, HOME=str(self.work_dir),
                         VIRTUAL_ENV=str(VENV_DIR), PATH=f"{bin_dir}:{os.environ['PATH']}"))
            self._wait(self._pings, self.uwsgi, "Zaqar under uwsgi")

    def _wait(self, ready, process, name):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                raise ReferenceFailed(f"{name} did not start:\n{self.log_tail()}")
            time.sleep(0.2)

    def _pings(self):
        try:
            return requests.get(f"{self.url}/v2/ping", headers=PING_HEADERS,
                                timeout=10).status_code == 204
        except requests.RequestException:  # refused, or queued while the app loads
            return False

    @property
    def pids(self):
        """{name: pid} of the server processes, for CPU accounting."""
        found = {f"uwsgi master (pid {self.uwsgi.pid})": self.uwsgi.pid}
        for pid in child_pids(self.uwsgi.pid):
            found[f"uwsgi worker (pid {pid})"] = pid
        found[f"redis-server (pid {self.redis.pid})"] = self.redis.pid
        return found

    def log_tail(self, lines=40):
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self):
        for process in reversed(self.processes):
            stop_process(process, 15)
        self.processes = []
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def _redis_answers(port):
    try:
        with socket.create_connection((HOST, port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("install", "serve"))
    arguments = parser.parse_args(argv)
    if arguments.command == "install":
        print(f"installed in {install().parent}")
        return
    with ReferenceZaqar() as zaqar:
        print(f"Zaqar {ZAQAR_VERSION} on Redis (uwsgi 1 process x 4 threads, noauth): "
              f"{zaqar.url}  (log: {zaqar.log_path}; Ctrl-C stops)", flush=True)
        stops = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        signal.sigwait(stops)


if __name__ == "__main__":
    main()

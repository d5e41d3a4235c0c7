"""A real Keystone for the end-to-end tests: keystone from PyPI in its own
virtualenv (git-ignored .local/keystone/venv), SQLite and fernet tokens,
served on 127.0.0.1 by the stdlib's wsgiref with a thread per request.

    python -m local.keystone install          # the venv only; idempotent
    python -m local.keystone serve --port 5000 --data-dir .local/keystone/data

From code (test fixtures):

    keystone = start_from_template(data_dir)  # a seeded copy, on a free port
    token, body = issue_token(keystone.url, "alpha-member", ..., "alpha")
    register_messaging_endpoint(keystone, runner_url)
    keystone.stop()

A data dir holds keystone.conf (rewritten on every start), keystone.db, the
fernet and credential key repositories and keystone.log. Stamp files make a
second run reuse what is there. The seeded projects and users are USERS.
Nothing here may import more than the stdlib: the server side of this module
runs under the Keystone venv's Python.
"""
import argparse
import fcntl
import grp
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, make_server

from local.dynamodb_local import _LIBC, _die_with_parent, stop_process
from local.stage import PROJECT_DIR

KEYSTONE_VERSION = "30.0.0"
INSTALL_DIR = PROJECT_DIR / ".local" / "keystone"
VENV_DIR = INSTALL_DIR / "venv"
DATA_DIR = INSTALL_DIR / "data"
# Set up and seeded once per machine, then copied: a copy starts in ~4 s,
# a set-up from nothing takes ~20 s more (four keystone-manage runs).
TEMPLATE_DIR = INSTALL_DIR / "template"
HOST = "127.0.0.1"
DOMAIN, DOMAIN_ID = "Default", "default"  # bootstrap's default domain
REGION = "RegionOne"
STARTUP_TIMEOUT = 120  # seconds; an idle machine serves in ~4 s


@dataclass(frozen=True)
class User:
    """A seeded user: its tokens are scoped to `project`; `roles` maps each
    project name to the roles granted there (bootstrap's implied roles make
    admin imply manager, member and reader, and member imply reader)."""
    name: str
    password: str
    project: str
    roles: dict


PROJECTS = ("admin", "service", "alpha", "beta")
ADMIN = User("admin", "admin-secret", "admin", {"admin": ("admin",), "alpha": ("admin",)})
# The service's own user, the trustee of trust subscriptions. `service` is
# enough to validate other users' tokens (identity:validate_token) and to
# pass as a service token; it needs no admin.
SERVICE_USER = User("zaqar", "zaqar-secret", "service", {"service": ("service",)})
USERS = {user.name: user for user in (
    ADMIN,
    User("alpha-member", "alpha-member-secret", "alpha", {"alpha": ("member",)}),
    User("alpha-reader", "alpha-reader-secret", "alpha", {"alpha": ("reader",)}),
    User("beta-member", "beta-member-secret", "beta", {"beta": ("member",)}),
    User("beta-reader", "beta-reader-secret", "beta", {"beta": ("reader",)}),
    SERVICE_USER,
)}

# Never a proxy from the environment: the only target is this machine.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class KeystoneFailed(RuntimeError):
    """Keystone could not be installed, set up or started; the message holds
    the end of its log."""


class KeystoneError(RuntimeError):
    """Keystone answered a call with an unexpected status."""

    def __init__(self, method, url, status, body):
        super().__init__(f"{method} {url}: {status} {body}")
        self.status, self.body = status, body


# --- the client side: plain HTTP calls -------------------------------------

def call(method, url, token=None, body=None, headers=None):
    """One request; (status, headers, decoded JSON body or None). HTTP errors
    are answers here, not exceptions."""
    request = urllib.request.Request(
        url, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **({"X-Auth-Token": token} if token else {}),
                 **(headers or {})})
    try:
        with _OPENER.open(request, timeout=30) as response:
            return response.status, response.headers, _decode(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, _decode(error.read())


def _decode(raw):
    return json.loads(raw) if raw.strip() else None


def _expect(method, url, token=None, body=None, headers=None):
    status, _, answer = call(method, url, token, body, headers)
    if status not in (200, 201, 204):
        raise KeystoneError(method, url, status, answer)
    return answer


def issue_token(keystone_url, user, password, project, domain=DOMAIN):
    """A project-scoped token for a password user: (token, token body)."""
    scope = {"project": {"name": project, "domain": {"name": domain}}}
    identity = {"methods": ["password"], "password": {
        "user": {"name": user, "domain": {"name": domain}, "password": password}}}
    url = f"{keystone_url}/auth/tokens"
    status, headers, body = call("POST", url, body={"auth": {"identity": identity, "scope": scope}})
    if status != 201:
        raise KeystoneError("POST", url, status, body)
    return headers["X-Subject-Token"], body


def validate_token(keystone_url, token, subject_token=None):
    """GET /v3/auth/tokens as the service will do it: (status, body). By
    default the token validates itself (allowed to its own user)."""
    status, _, body = call("GET", f"{keystone_url}/auth/tokens", token,
                           headers={"X-Subject-Token": subject_token or token})
    return status, body


def revoke(keystone_url, token):
    """Revoke a token with itself (allowed to its own user)."""
    _expect("DELETE", f"{keystone_url}/auth/tokens", token, headers={"X-Subject-Token": token})


def admin_token(keystone_url):
    return issue_token(keystone_url, ADMIN.name, ADMIN.password, ADMIN.project)[0]


def register_messaging_endpoint(keystone, url):
    """Make `url` (the runner's root, e.g. http://127.0.0.1:8888) the only
    public endpoint of the `messaging` service, Zaqar's service type, so
    python-zaqarclient and `openstack messaging` find the runner."""
    _replace_endpoint(keystone.url, "messaging", "zaqar", url)


def _replace_endpoint(keystone_url, service_type, name, url):
    """One public endpoint for the service of that type, created if
    missing: the ports change from run to run."""
    token = admin_token(keystone_url)
    services = _expect("GET", f"{keystone_url}/services?type={service_type}", token)["services"]
    if services:
        service_id = services[0]["id"]
    else:
        service_id = _expect("POST", f"{keystone_url}/services", token, {
            "service": {"type": service_type, "name": name}})["service"]["id"]
    endpoints = _expect("GET", f"{keystone_url}/endpoints?service_id={service_id}", token)
    for endpoint in endpoints["endpoints"]:
        _expect("DELETE", f"{keystone_url}/endpoints/{endpoint['id']}", token)
    _expect("POST", f"{keystone_url}/endpoints", token, {"endpoint": {
        "service_id": service_id, "interface": "public", "url": url, "region_id": REGION}})


def seed(keystone_url):
    """Create PROJECTS and USERS with their role grants; what exists is kept
    (an existing user's password is not changed)."""
    token = admin_token(keystone_url)
    projects = {name: _find_or_create(keystone_url, token, "projects", name,
                                      {"domain_id": DOMAIN_ID})
                for name in PROJECTS}
    roles = {role["name"]: role["id"]
             for role in _expect("GET", f"{keystone_url}/roles", token)["roles"]}
    for user in USERS.values():
        user_id = _find_or_create(keystone_url, token, "users", user.name, {
            "domain_id": DOMAIN_ID, "password": user.password,
            "default_project_id": projects[user.project]})
        for project, role_names in user.roles.items():
            for role in role_names:
                _expect("PUT", f"{keystone_url}/projects/{projects[project]}/users/{user_id}"
                               f"/roles/{roles[role]}", token)


def _find_or_create(keystone_url, token, collection, name, fields):
    found = _expect("GET", f"{keystone_url}/{collection}?name={name}", token)[collection]
    if found:
        return found[0]["id"]
    kind = collection[:-1]
    created = _expect("POST", f"{keystone_url}/{collection}", token,
                      {kind: {"name": name, **fields}})
    return created[kind]["id"]


# --- install, set up, start ------------------------------------------------

@contextmanager
def _locked(path):
    """An exclusive file lock: pytest-xdist workers share INSTALL_DIR."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _stamped(stamp, content):
    return stamp.exists() and stamp.read_text() == content


def install():
    """Keystone's venv, made once; returns its Python."""
    python = VENV_DIR / "bin" / "python"
    stamp = VENV_DIR / ".keystone-installed"
    if _stamped(stamp, KEYSTONE_VERSION):
        return python
    with _locked(INSTALL_DIR / "install.lock"):
        if not _stamped(stamp, KEYSTONE_VERSION):
            subprocess.run([sys.executable, "-m", "venv", str(VENV_DIR)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check", f"keystone=={KEYSTONE_VERSION}"],
                           check=True)
            stamp.write_text(KEYSTONE_VERSION)
    return python


def write_config(data_dir, token_expiration=3600):
    """keystone.conf for this data dir; everything Keystone keeps is in it."""
    config = data_dir / "keystone.conf"
    config.write_text(f"""\
[database]
connection = sqlite:///{data_dir}/keystone.db

[token]
provider = fernet
expiration = {token_expiration}

[fernet_tokens]
key_repository = {data_dir}/fernet-keys

[fernet_receipts]
# Receipts (multi-factor auth) are unused; keep them off /etc/keystone too.
key_repository = {data_dir}/fernet-keys

[credential]
key_repository = {data_dir}/credential-keys

[identity]
# bcrypt's minimum: a token is issued in ~50 ms instead of ~300 ms. Test
# passwords only.
password_hash_rounds = 4

[cache]
# In this process's memory: validating a token takes ~20 ms instead of
# ~300 ms. Revocation still invalidates it.
enabled = true
backend = dogpile.cache.memory
""")
    return config


def _log_tail(log_path, lines=60):
    if not log_path.exists():
        return ""
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def setup(data_dir):
    """Database, key repositories and the bootstrap admin (with the admin,
    manager, member, reader and service roles), once per data dir."""
    data_dir = Path(data_dir).resolve()
    stamp = data_dir / ".set-up"
    if _stamped(stamp, KEYSTONE_VERSION):
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    manage = [str(VENV_DIR / "bin" / "keystone-manage"), "--config-file",
              str(write_config(data_dir))]
    # Required when run as root: who owns the key files.
    owner = ["--keystone-user", pwd.getpwuid(os.getuid()).pw_name,
             "--keystone-group", grp.getgrgid(os.getgid()).gr_name]
    log_path = data_dir / "keystone.log"
    for arguments in (["db_sync"], ["fernet_setup", *owner], ["credential_setup", *owner],
                      ["bootstrap", "--bootstrap-username", ADMIN.name,
                       "--bootstrap-password", ADMIN.password,
                       "--bootstrap-project-name", ADMIN.project,
                       "--bootstrap-role-name", "admin", "--bootstrap-region-id", REGION]):
        with open(log_path, "ab") as log:
            done = subprocess.run(manage + arguments, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT)
        if done.returncode != 0:
            raise KeystoneFailed(f"keystone-manage {arguments[0]} failed:\n{_log_tail(log_path)}")
    stamp.write_text(KEYSTONE_VERSION)


def _seed_digest():
    return hashlib.sha256(repr((PROJECTS, USERS)).encode()).hexdigest()


class Keystone:
    """A running Keystone: .url (http://127.0.0.1:PORT/v3), .port,
    .data_dir, .log_path; .stop()."""

    def __init__(self, process, port, data_dir):
        self.process, self.port, self.data_dir = process, port, data_dir
        self.url = f"http://{HOST}:{port}/v3"
        self.log_path = data_dir / "keystone.log"

    def log_tail(self, lines=60):
        return _log_tail(self.log_path, lines)

    def stop(self, timeout=10):
        stop_process(self.process, timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def start(port=0, data_dir=DATA_DIR, token_expiration=3600, timeout=STARTUP_TIMEOUT):
    """Install, set up and seed as needed, serve on `port` (0: a free one,
    chosen by the server itself so parallel starts never clash), and return
    once it answers. The identity endpoint in the catalog follows the port."""
    python = install()
    data_dir = Path(data_dir).resolve()
    setup(data_dir)
    config = write_config(data_dir, token_expiration)
    port_file = data_dir / "keystone.port"
    port_file.unlink(missing_ok=True)
    with open(data_dir / "keystone.log", "ab") as log:
        # Its own session: a Ctrl-C in the terminal reaches `serve`, which
        # stops it. On Linux it also dies with the process that started it.
        process = subprocess.Popen(
            [str(python), "-m", "local.keystone", "wsgi", str(config), str(port), str(port_file)],
            cwd=PROJECT_DIR, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent if _LIBC else None)
    try:
        keystone = Keystone(process, _wait_for_port(process, port_file, timeout), data_dir)
        _wait_until_answers(keystone, timeout)
        if not _stamped(data_dir / ".seeded", _seed_digest()):
            seed(keystone.url)
            (data_dir / ".seeded").write_text(_seed_digest())
        _replace_endpoint(keystone.url, "identity", "keystone", keystone.url)
    except (KeystoneFailed, KeystoneError, OSError) as failure:
        stop_process(process, 10)
        raise KeystoneFailed(f"Keystone did not start ({failure}):\n"
                             f"{_log_tail(data_dir / 'keystone.log')}") from None
    return keystone


def _wait_for_port(process, port_file, timeout):
    deadline = time.monotonic() + timeout
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise KeystoneFailed("no port reported")
        time.sleep(0.1)
    return int(port_file.read_text())


def _wait_until_answers(keystone, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if call("GET", keystone.url)[0] == 200:
                return
        except OSError:
            pass
        if keystone.process.poll() is not None or time.monotonic() > deadline:
            raise KeystoneFailed(f"{keystone.url} does not answer")
        time.sleep(0.1)


def prepare_template():
    """TEMPLATE_DIR set up and seeded, once per machine (again when USERS
    change); returns it."""
    with _locked(INSTALL_DIR / "template.lock"):
        if not _stamped(TEMPLATE_DIR / ".seeded", _seed_digest()):
            shutil.rmtree(TEMPLATE_DIR, ignore_errors=True)
            start(data_dir=TEMPLATE_DIR).stop()
    return TEMPLATE_DIR


def start_from_template(data_dir, port=0, **options):
    """start() on a fresh copy of the template in `data_dir` (may exist,
    empty): parallel test workers each get their own database."""
    template = prepare_template()
    shutil.copytree(template, data_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("keystone.log", "keystone.port"))
    return start(port, data_dir, **options)


# --- the server side: runs under the Keystone venv's Python ----------------

class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def _serve_wsgi(config, port, port_file):
    os.environ["OS_KEYSTONE_CONFIG_FILES"] = config
    del sys.argv[1:]  # Keystone parses the command line as its own options
    from keystone.server.wsgi import initialize_public_application

    server = make_server(HOST, port, initialize_public_application(),
                         server_class=_ThreadingWSGIServer)
    # Written whole, after the bind: the parent reads it once it exists.
    scratch = Path(port_file).with_suffix(".new")
    scratch.write_text(str(server.server_port))
    os.replace(scratch, port_file)
    server.serve_forever()


# --- the command line -----------------------------------------------------

def _serve(arguments):
    # SIGTERM unwinds like Ctrl-C, so Keystone is stopped either way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    keystone = start(arguments.port, arguments.data_dir, arguments.token_expiration)
    try:
        register_messaging_endpoint(keystone, arguments.messaging_url)
        print(f"Keystone {KEYSTONE_VERSION} on {keystone.url} (log: {keystone.log_path})")
        for user in USERS.values():
            print(f"  {user.name} / {user.password}  project {user.project}  roles {user.roles}")
        print("Ctrl-C stops it.", flush=True)
        keystone.process.wait()
        sys.exit(f"Keystone exited:\n{keystone.log_tail()}")
    except KeyboardInterrupt:
        pass
    finally:
        keystone.stop()


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m local.keystone")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="make the Keystone venv")
    serve = commands.add_parser("serve", help="set up, seed and serve until Ctrl-C/SIGTERM")
    serve.add_argument("--port", type=int, default=5000)
    serve.add_argument("--data-dir", type=Path, default=DATA_DIR)
    serve.add_argument("--token-expiration", type=int, default=3600, help="seconds")
    serve.add_argument("--messaging-url", default="http://127.0.0.1:8888",
                       help="the service's root, registered as Keystone's messaging endpoint")
    wsgi = commands.add_parser("wsgi", help="(internal) the server process itself")
    wsgi.add_argument("config")
    wsgi.add_argument("port", type=int)
    wsgi.add_argument("port_file")
    arguments = parser.parse_args(argv)
    if arguments.command == "install":
        print(f"Keystone {KEYSTONE_VERSION}: {install()}")
    elif arguments.command == "serve":
        _serve(arguments)
    else:
        _serve_wsgi(arguments.config, arguments.port, arguments.port_file)


if __name__ == "__main__":
    main(sys.argv[1:])

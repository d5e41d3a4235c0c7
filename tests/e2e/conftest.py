"""End-to-end fixtures: the local runner as a real HTTP server, and a local
DynamoDB for the trigger emulation.

Storage is DynamoDB Local, in memory, when Java is present; otherwise moto.
A real Keystone, its users' tokens, and beta's resources for the
cross-project probes (probes.py) of each auth mode's module. The tests'
own OIDC issuer. A page (pages.py) served on two origins, and headless
Chromium to run it (Debian's chromium and chromium-driver; `make test`
installs them).
"""
import functools
import http.server
import shutil
import threading
import uuid

import moto
import pytest

from contract.support import shared_dynamodb_local
from local import dynamodb_local
from local import keystone as local_keystone
from local.launch import Launched, RunnerFailed
from local.oidc_issuer import Issuer
from tests.e2e.pages import OTHER_PORT, PAGE_PORT
from tests.e2e.probes import BETA, SECRET, ask


def launch(*options, **keywords):
    """The runner (local/launch.py), or the test fails with its log."""
    try:
        return Launched(*options, **keywords)
    except RunnerFailed as failed:
        pytest.fail(str(failed))


@pytest.fixture(scope="session")
def local_runner(tmp_path_factory):
    """`python -m local.runner` started on free ports, in memory; it has
    .url (HTTP), .ws_url (websocket) and .advance(seconds) (its clock)."""
    clock_file = tmp_path_factory.mktemp("runner") / "clock-offset"
    with launch("--schedule-interval", "2", clock_file=clock_file) as runner:
        yield runner


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


@pytest.fixture(scope="session")
def shared_dynamodb_endpoint():
    """The DynamoDB Local this process shares with the contract and
    concurrency tests (contract/support.py), or None without Java: a second
    DynamoDB that costs no JVM start of its own once those have run here.
    Tests keep apart on it by table prefix or project."""
    if not dynamodb_local.java_available():
        return None
    return shared_dynamodb_local()


@pytest.fixture(scope="session")
def keystone(tmp_path_factory):
    """A real Keystone (local/keystone.py) for the session, seeded with
    local.keystone.USERS: .url is http://127.0.0.1:PORT/v3. Each xdist
    worker starts its own, on its own port, from a copy of the template set
    up once per machine."""
    try:
        server = local_keystone.start_from_template(tmp_path_factory.mktemp("keystone"))
    except local_keystone.KeystoneFailed as failed:
        pytest.fail(str(failed))
    yield server
    server.stop()


# Keystone's users' tokens, and beta's resources for the cross-project
# probes (tests/e2e/probes.py), on the module's own `runner`.

@pytest.fixture(scope="module")
def issued(keystone):
    """{user name: (project-scoped token, its document)}, each issued once."""
    found = {}

    def issue(user):
        if user.name not in found:
            found[user.name] = local_keystone.issue_token(
                keystone.url, user.name, user.password, user.project)
        return found[user.name]
    return issue


@pytest.fixture(scope="module")
def tokens(issued):
    return lambda user: issued(user)[0]


@pytest.fixture(scope="module")
def project_of(issued):
    """A user's project id, as Keystone has it."""
    return lambda user: issued(user)[1]["token"]["project"]["id"]


@pytest.fixture(scope="module")
def beta_resources(runner, tokens, project_of):
    """A queue of beta's with metadata, a message, a claim on another, a
    subscription, a topic with a message and a subscriber, and an API key:
    what alpha's probes must not reach."""
    queue = f"beta-{uuid.uuid4().hex[:8]}"
    token = tokens(BETA)
    assert ask(runner, "PUT", f"/v2/queues/{queue}", token, {"secret": SECRET}).status_code == 201
    posted = ask(runner, "POST", f"/v2/queues/{queue}/messages", token,
                 {"messages": [{"body": SECRET, "ttl": 3000}, {"body": SECRET, "ttl": 3000}]})
    message_id = posted.json()["resources"][0].rsplit("/", 1)[1]
    claimed = ask(runner, "POST", f"/v2/queues/{queue}/claims?limit=1", token,
                  {"ttl": 3000, "grace": 60})
    claim_id = claimed.headers["Location"].rsplit("/", 1)[1]
    claimed_id = claimed.json()["messages"][0]["href"].rsplit("/", 1)[1]
    subscribed = ask(runner, "POST", f"/v2/queues/{queue}/subscriptions", token,
                     {"subscriber": "http://127.0.0.1:9/beta-hook", "ttl": 3000})
    # And a topic of the same name, with a message and a subscriber of its own.
    topic = f"/v2/topics/{queue}"
    assert ask(runner, "PUT", topic, token, {"secret": SECRET}).status_code == 201
    assert ask(runner, "POST", f"{topic}/messages", token,
               {"messages": [{"body": SECRET, "ttl": 3000}]}).status_code == 201
    assert ask(runner, "POST", f"{topic}/subscriptions", token,
               {"subscriber": "http://127.0.0.1:9/beta-hook", "ttl": 3000}).status_code == 201
    key = ask(runner, "POST", "/v2/keys", tokens(local_keystone.ADMIN), {
        "project": project_of(BETA), "roles": ["member"], "name": "beta's"}).json()
    return {"queue_name": queue, "topic_name": queue, "message_id": message_id,
            "claim_id": claim_id, "claimed_id": claimed_id, "key_id": key["id"],
            "key": key["key"], "subscription_id": subscribed.json()["subscription_id"],
            # Pools and flavors are the stage's (admin routes): names to aim at.
            "pool_name": "beta-pool", "flavor_name": "beta-flavor"}


@pytest.fixture(scope="module")
def oidc_issuer():
    """The tests' OIDC issuer (local/oidc_issuer.py), its JWKS on 127.0.0.1."""
    issuer = Issuer()
    yield issuer
    issuer.close()


# -- a browser ------------------------------------------------------------------

@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The page, served on pages.PAGE and on pages.OTHER_PAGE."""
    root = tmp_path_factory.mktemp("page")
    (root / "index.html").write_text("<!doctype html><title>zaqar page</title>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
               for port in (PAGE_PORT, OTHER_PORT)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory, pages):
    """Headless Chromium through selenium, one per module."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromedriver are missing: `make test` installs them "
                    "(apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options,
                              service=Service(executable_path=shutil.which("chromedriver")))
    driver.set_script_timeout(30)
    yield driver
    driver.quit()

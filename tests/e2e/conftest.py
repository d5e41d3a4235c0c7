"""End-to-end fixtures: the local runner as a real HTTP server, and a local
DynamoDB for the trigger emulation.

Storage is DynamoDB Local, in memory, when Java is present; otherwise moto.
"""
import moto
import pytest

from local import dynamodb_local
from local import keystone as local_keystone
from local.launch import Launched, RunnerFailed


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

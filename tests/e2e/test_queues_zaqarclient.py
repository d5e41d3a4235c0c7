"""python-zaqarclient, unchanged, against the local runner over real HTTP."""
import uuid

import pytest
import requests

from conftest import headers
from e2e.clients import noauth_client


@pytest.fixture
def project():
    return f"e2e-{uuid.uuid4()}"


@pytest.fixture
def cli(runner_url, project):
    return noauth_client(runner_url, project)


def test_queue_lifecycle(cli):
    names = ["alpha", "bravo", "charlie", "delta", "echo"]
    for name in names:
        cli.queue(name, force_create=True)

    listed, count = cli.queues(limit=2, with_count=True)
    assert count == 5
    assert [queue.name for queue in listed.stream()] == names  # 3 pages of <= 2

    queue = cli.queue("alpha", auto_create=False)
    assert queue.exists()
    metadata = queue.metadata(force_reload=True)
    assert metadata["_default_message_ttl"] == 3600

    # Set: the client turns a new dict into a JSON-patch of add/replace/remove.
    assert queue.metadata(new_meta={"colour": "blue", "size": 3})["colour"] == "blue"
    updated = queue.metadata(new_meta={"colour": "green"})
    assert updated["colour"] == "green"
    assert "size" not in updated
    reloaded = cli.queue("alpha", auto_create=False).metadata(force_reload=True)
    assert reloaded["colour"] == "green"
    assert reloaded["_default_message_ttl"] == 3600

    for name in names:
        cli.queue(name, auto_create=False).delete()
    listed, count = cli.queues(with_count=True)
    assert list(listed.stream()) == []
    assert not count


def test_unknown_path_is_404(runner_url):
    answer = requests.get(f"{runner_url}/v2/no/such/thing", headers=headers())
    assert answer.status_code == 404
    assert answer.json() == {"title": "404 Not Found"}


def test_unsupported_method_is_405_with_allow(runner_url):
    answer = requests.post(f"{runner_url}/v2/queues/q1", headers=headers())
    assert answer.status_code == 405
    allowed = {method.strip() for method in answer.headers["Allow"].split(",")}
    assert {"GET", "PUT", "PATCH", "DELETE", "OPTIONS"} <= allowed
    assert "POST" not in allowed

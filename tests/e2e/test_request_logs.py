"""The runner's log, as an operator reads a deployed function's: with
`--log-format json`, one JSON line per request, carrying the request id the
client got in x-openstack-request-id; in text (the default), the same line
for a person. Real HTTP to the runner (tests/e2e/conftest.py's launch)."""
import json
import time
import uuid

import pytest
import requests

from tests.e2e.conftest import launch

CLIENT_ID = "3381af92-2b9e-11e3-b191-71861300734c"
PROJECT = "logs"
HEADERS = {"Client-ID": CLIENT_ID, "X-Project-ID": PROJECT}


@pytest.fixture(scope="module")
def json_runner():
    with launch("--log-format", "json") as runner:
        yield runner


def json_lines(runner):
    found = []
    for line in runner.log_text().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue  # DynamoDB Local's own output
    return found


def wait_for_lines(runner, request_ids, timeout=10):
    """The JSON lines once every id has one (they are written as answers go)."""
    deadline = time.monotonic() + timeout
    while True:
        found = json_lines(runner)
        seen = {line.get("request_id") for line in found}
        if set(request_ids) <= seen or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_one_json_line_per_request_with_the_id_the_client_got(json_runner):
    url, queue = json_runner.url, f"q-{uuid.uuid4().hex[:8]}"
    with requests.Session() as session:
        answers = [
            session.put(f"{url}/v2/queues/{queue}", headers=HEADERS, json={}),
            session.post(f"{url}/v2/queues/{queue}/messages", headers=HEADERS,
                         json={"messages": [{"body": 1}, {"body": 2}]}),
            session.get(f"{url}/v2/queues/{queue}/messages?echo=true", headers=HEADERS),
            session.get(f"{url}/v2/queues/{queue}/messages", headers={"X-Project-ID": PROJECT}),
            session.options(f"{url}/v2/queues/{queue}"),
            session.get(f"{url}/v2/queues/{queue}/messages/nothing", headers=HEADERS),
        ]
    ids = [answer.headers["x-openstack-request-id"] for answer in answers]
    assert len(set(ids)) == len(ids)
    found = wait_for_lines(json_runner, ids)
    for answer, request_id in zip(answers, ids):
        # One request line each (an EMF line, when counted, names it too).
        [line] = [line for line in found
                  if line.get("request_id") == request_id and "_aws" not in line]
        assert line["kind"] == "request"
        assert line["status"] == answer.status_code
        assert line["method"] == answer.request.method
        assert line["path"] == answer.request.path_url.split("?")[0]
        assert line["queue"] == queue
        assert isinstance(line["latency_ms"], float)
        # Tied to the id the runner gives each request, as API Gateway does.
        assert request_id == f"req-{line['gateway_request_id']}"
    by_id = {line["request_id"]: line for line in found
             if line.get("request_id") in ids and "_aws" not in line}
    assert [by_id[request_id]["action"] for request_id in ids] == [
        "queues:create", "messages:create", "messages:get_all", "messages:get_all",
        "options", "messages:get"]
    assert [by_id[request_id]["project"] for request_id in ids] == [
        PROJECT, PROJECT, PROJECT, None, None, PROJECT]
    [posted] = [line for line in found if "_aws" in line
                and line.get("request_id") == ids[1]]
    assert posted["MessagesPosted"] == 2


def test_a_request_the_app_never_saw_has_the_runners_line(json_runner):
    path = f"/v3/{uuid.uuid4().hex}"
    answer = requests.get(f"{json_runner.url}{path}", headers=HEADERS)
    assert answer.status_code == 404 and "x-openstack-request-id" not in answer.headers
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in json_lines(json_runner) if line.get("path") == path]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [(line["kind"], line["status"], line["logger"]) for line in lines] == [
        ("gateway", 404, "local.runner")]


def test_the_text_log_shows_the_same_line(local_runner):
    queue = f"q-{uuid.uuid4().hex[:8]}"
    answer = requests.put(f"{local_runner.url}/v2/queues/{queue}", headers=HEADERS, json={})
    request_id = answer.headers["x-openstack-request-id"]
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in local_runner.log_text().splitlines() if request_id in line]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    [line] = lines
    assert f"zaqar.request PUT /v2/queues/{queue} 201 " in line
    assert f"queues:create project={PROJECT} queue={queue} {request_id}" in line
    assert not line.lstrip().startswith("{")

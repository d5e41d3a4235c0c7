"""CORS, throttling and quotas against the local runner, over real HTTP: as
curl sends a browser's requests, and as headless Chromium runs a page on
another origin that posts and lists messages (Debian's chromium and
chromium-driver; `make test` installs them)."""
import time
import uuid

import pytest
import requests

from local.dynamodb_local import free_port
from tests.e2e.conftest import launch
from tests.e2e.pages import OTHER_PAGE, PAGE, run_page

CLIENT_ID = "3381af92-2b9e-11e3-b191-71861300734c"
# A burst the quota tests' requests stay within, a rate their polling keeps to.
RATE, BURST = 1, 15
LIMITS = {"CORS_ALLOWED_ORIGINS": PAGE, "PROJECT_RATE_LIMIT": str(RATE),
          "PROJECT_BURST_LIMIT": str(BURST), "MAX_QUEUES_PER_PROJECT": "2",
          "MAX_MESSAGES_PER_QUEUE": "4", "MAX_SUBSCRIPTIONS_PER_QUEUE": "1"}


@pytest.fixture(scope="module")
def runner():
    with launch("--schedule-interval", "1", environment=LIMITS) as started:
        yield started


@pytest.fixture(scope="module")
def guarded():
    """A runner that authenticates with Keystone (one nobody reaches: no
    request here gets as far as asking it) and throttles the whole stage, as
    API Gateway does before any function runs."""
    with launch("--auth", "keystone", "--keystone-url", f"http://127.0.0.1:{free_port()}/v3",
                environment=dict(LIMITS, API_RATE_LIMIT="1", API_BURST_LIMIT="10")) as started:
        yield started


def ask(runner, method, path, project, body=None, **extra):
    """One request as a page on PAGE makes it."""
    headers = {"Client-ID": CLIENT_ID, "X-Project-ID": project, "Origin": PAGE, **extra}
    return requests.request(method, runner.url + path, json=body, headers=headers, timeout=10)


def preflight(url, path, origin=PAGE, method="POST"):
    return requests.options(url + path, timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "client-id,content-type,x-project-id"})


def project():
    return f"p-{uuid.uuid4().hex[:8]}"


# -- CORS over HTTP -------------------------------------------------------------

def test_a_preflight_from_the_allowed_origin_gets_the_headers(runner):
    answer = preflight(runner.url, "/v2/queues/q/messages")
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == PAGE
    assert answer.headers["Vary"] == "Origin"
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert "X-Project-ID" in answer.headers["Access-Control-Allow-Headers"]


def test_a_preflight_from_another_origin_gets_none(runner):
    answer = preflight(runner.url, "/v2/queues/q/messages", origin=OTHER_PAGE)
    assert answer.status_code == 200
    assert not [name for name in answer.headers if name.lower().startswith("access-control")]


@pytest.mark.parametrize("path", ["/v2/queues/q/messages/0123456789abcdef01234567",
                                  "/v2/no-such-thing"])
def test_a_404_carries_them(runner, path):
    # The app's own 404, and the one the gateway gives for an unknown path.
    answer = ask(runner, "GET", path, project())
    assert answer.status_code == 404
    assert answer.headers["Access-Control-Allow-Origin"] == PAGE


def test_a_preflight_needs_no_credentials_and_a_401_carries_them(guarded):
    answer = preflight(guarded.url, "/v2/queues/q/messages")
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == PAGE
    refused = ask(guarded, "GET", "/v2/queues", project())
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == PAGE


def test_the_stage_throttles_everyone_past_its_own_limit(guarded):
    for _ in range(40):  # the 10 of the burst, faster than 1 a second
        refused = ask(guarded, "GET", "/v2/queues", project())
        if refused.status_code != 401:
            break
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["title"] == "Too many requests"
    assert refused.headers["Access-Control-Allow-Origin"] == PAGE


# -- throttling and quotas ---------------------------------------------------------

def test_a_project_past_its_rate_gets_429_while_another_is_served(runner):
    busy, calm = project(), project()
    codes = [ask(runner, "GET", "/v2/queues", busy).status_code for _ in range(BURST)]
    assert codes == [200] * BURST
    # Faster than RATE a second (a loaded machine may take a while per request).
    for _ in range(30):
        refused = ask(runner, "GET", "/v2/queues", busy)
        if refused.status_code != 200:
            break
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["title"] == "Too many requests"
    assert refused.headers["Access-Control-Allow-Origin"] == PAGE
    assert ask(runner, "GET", "/v2/queues", calm).status_code == 200
    time.sleep(int(refused.headers["Retry-After"]))
    assert ask(runner, "GET", "/v2/queues", busy).status_code == 200


def test_queues_per_project(runner):
    mine = project()
    assert [ask(runner, "PUT", f"/v2/queues/{name}", mine, {}).status_code
            for name in ("a", "b", "c")] == [201, 201, 403]
    refused = ask(runner, "POST", "/v2/queues/c/messages", mine, {"messages": [{"body": 1}]})
    assert refused.status_code == 403
    assert "max_queues_per_project: 2" in refused.json()["description"]
    listed = ask(runner, "GET", "/v2/queues", mine).json()["queues"]
    assert [queue["name"] for queue in listed] == ["a", "b"]


def total(runner, who, queue):
    return ask(runner, "GET", f"/v2/queues/{queue}/stats", who).json()["messages"]["total"]


def test_messages_per_queue(runner):
    mine = project()
    posted = ask(runner, "POST", "/v2/queues/q/messages", mine,
                 {"messages": [{"body": n} for n in range(3)]})
    assert posted.status_code == 201
    deadline = time.monotonic() + 30  # the stats follow the stream
    while total(runner, mine, "q") < 3 and time.monotonic() < deadline:
        time.sleep(1 / RATE)
    refused = ask(runner, "POST", "/v2/queues/q/messages", mine,
                  {"messages": [{"body": n} for n in range(2)]})
    assert refused.status_code == 403
    assert "max_messages_per_queue: 4" in refused.json()["description"]
    assert ask(runner, "POST", "/v2/queues/q/messages", mine,
               {"messages": [{"body": 3}]}).status_code == 201


def test_subscriptions_per_queue(runner):
    mine = project()
    assert ask(runner, "POST", "/v2/queues/q/subscriptions", mine,
               {"subscriber": "http://127.0.0.1:9/a", "ttl": 3600}).status_code == 201
    refused = ask(runner, "POST", "/v2/queues/q/subscriptions", mine,
                  {"subscriber": "http://127.0.0.1:9/b", "ttl": 3600})
    assert refused.status_code == 403
    assert "max_subscriptions_per_queue: 1" in refused.json()["description"]


# -- a browser --------------------------------------------------------------------

def test_a_page_on_the_allowed_origin_posts_and_lists_messages(runner, browser):
    result = run_page(browser, PAGE, runner.url, "browser", {"X-Project-ID": project()})
    assert result == {"posted": 201, "listed": 200, "bodies": [{"from": PAGE}],
                      "requestId": result.get("requestId")}
    assert result["requestId"].startswith("req-")  # an exposed header


def test_a_page_on_another_origin_is_refused(runner, browser):
    who = project()
    result = run_page(browser, OTHER_PAGE, runner.url, "browser", {"X-Project-ID": who})
    assert result == {"error": "TypeError: Failed to fetch"}
    # Its preflight was refused, so the post was never sent: no queue was made.
    assert ask(runner, "GET", "/v2/queues", who).json()["queues"] == []

"""A web app's page calling the API with its own credentials, across
origins: a runner that takes API keys and the tests' issuer's JWTs
(`--auth apikey,jwt`, no Keystone) and allows one page origin, and headless
Chromium running the page (pages.py) there. Every request the page makes
carries a credential header, so each one is preflighted; a page on an
origin not allowed is refused at its preflight, before anything is sent."""
import uuid

import pytest

from local.oidc_issuer import AUDIENCE
from tests.e2e.conftest import launch
from tests.e2e.pages import OTHER_PAGE, PAGE, run_page
from tests.e2e.probes import ask

PROJECT = "web-app"


@pytest.fixture(scope="module")
def runner(oidc_issuer):
    with launch("--auth", "apikey,jwt", "--jwt-issuer", oidc_issuer.url,
                "--jwt-audience", AUDIENCE,
                environment={"CORS_ALLOWED_ORIGINS": PAGE}) as started:
        yield started


@pytest.fixture(scope="module")
def key(runner, oidc_issuer):
    """A member key of PROJECT, issued by an administrator signed in with the
    issuer (a stage without Keystone needs no bootstrapped key for that)."""
    admin = oidc_issuer.token(project="ops", roles=["admin"])
    made = ask(runner, "POST", "/v2/keys", admin,
               {"project": PROJECT, "roles": ["member"], "name": "web-app"})
    assert made.status_code == 201, made.text
    return made.json()["key"]


def new_queue():
    return f"page-{uuid.uuid4().hex[:8]}"


def queues(runner, key):
    """PROJECT's queue names, as its key lists them without a browser."""
    return [entry["name"] for entry in ask(runner, "GET", "/v2/queues", key).json()["queues"]]


def assert_posted_and_listed(result):
    assert result == {"posted": 201, "listed": 200, "bodies": [{"from": PAGE}],
                      "requestId": result.get("requestId")}
    assert result["requestId"].startswith("req-")  # an exposed header


@pytest.mark.parametrize("header", ["X-Auth-Token", "Authorization"])
def test_a_page_posts_and_lists_messages_with_a_key(runner, browser, key, header):
    queue = new_queue()
    credential = key if header == "X-Auth-Token" else f"Bearer {key}"
    assert_posted_and_listed(run_page(browser, PAGE, runner.url, queue, {header: credential}))
    assert queue in queues(runner, key)


def test_a_page_posts_and_lists_messages_with_a_jwt(runner, browser, oidc_issuer, key):
    queue = new_queue()
    token = oidc_issuer.token(project=PROJECT, roles=["member"])
    assert_posted_and_listed(run_page(browser, PAGE, runner.url, queue,
                                      {"Authorization": f"Bearer {token}"}))
    # In the project the token's claim names: the project's key reads the message.
    listed = ask(runner, "GET", f"/v2/queues/{queue}/messages?echo=true", key)
    assert [message["body"] for message in listed.json()["messages"]] == [{"from": PAGE}]


def test_a_page_reads_the_401_of_a_bad_key(runner, browser, key):
    queue = new_queue()
    bad = key[:-1] + ("1" if key[-1] == "0" else "0")  # the key's id, another secret
    result = run_page(browser, PAGE, runner.url, queue, {"X-Auth-Token": bad})
    # Statuses and body visible to the page's script: the 401s carry the CORS headers.
    assert (result["posted"], result["listed"]) == (401, 401)
    assert result["refused"] == {"title": "Unauthorized", "description":
                                 "The request you have made requires authentication."}
    assert queue not in queues(runner, key)


def test_a_page_on_another_origin_is_refused(runner, browser, oidc_issuer, key):
    queue = new_queue()
    token = oidc_issuer.token(project=PROJECT, roles=["member"])
    for credential in ({"X-Auth-Token": key}, {"Authorization": f"Bearer {token}"}):
        result = run_page(browser, OTHER_PAGE, runner.url, queue, credential)
        assert result == {"error": "TypeError: Failed to fetch"}
    # Its preflights were refused, so no post was sent: no queue was made.
    assert queue not in queues(runner, key)

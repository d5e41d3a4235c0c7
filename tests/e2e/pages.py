"""A page that calls the API from another origin, as headless Chromium runs
it (the `pages` and `browser` fixtures of conftest.py serve and drive it):
it posts a message to a queue and lists the queue, with whatever headers
the test gives it (X-Project-ID, X-Auth-Token or Authorization)."""
from conftest import CLIENT_ID
from local.dynamodb_local import free_port

# The page's origin, which a test's stage allows, and another one it does not.
PAGE_PORT, OTHER_PORT = free_port(), free_port()
PAGE = f"http://127.0.0.1:{PAGE_PORT}"
OTHER_PAGE = f"http://127.0.0.1:{OTHER_PORT}"

SCRIPT = """
const [api, queue, extra, done] = arguments;
const headers = {"Client-ID": "%s", "Content-Type": "application/json", ...extra};
const messages = `${api}/v2/queues/${queue}/messages`;
(async () => {
  try {
    const posted = await fetch(messages, {method: "POST", headers,
      body: JSON.stringify({messages: [{body: {from: location.origin}}]})});
    const listed = await fetch(messages + "?echo=true", {headers});
    const answer = await listed.json();
    done({posted: posted.status, listed: listed.status,
          requestId: listed.headers.get("x-openstack-request-id"),
          ...(listed.ok ? {bodies: answer.messages.map(m => m.body)} : {refused: answer})});
  } catch (error) {
    done({error: String(error)});
  }
})();
""" % CLIENT_ID


def run_page(browser, origin, api, queue, headers):
    """What the page on `origin` saw: the statuses of its post and its
    listing, and the bodies listed (or the error answer's body), or the
    error its fetch threw."""
    browser.get(origin + "/index.html")
    return browser.execute_async_script(SCRIPT, api, queue, headers)

"""DynamoDB faults under the REST API: throttling, 5xx and lost connections.

Faults are injected through botocore's event system on the clients of the
pynamodb models: a `before-call` handler answers a chosen call with an error
instead of sending it (so botocore's own retry never sees it), and an
`after-call` handler can fail a call whose write DynamoDB has already applied,
as a timeout on the response does. Storage runs on moto (tests/conftest.py).
"""
import json
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Optional

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from conftest import headers
from contract.support import model_classes

ENDPOINT = "https://dynamodb.us-east-1.amazonaws.com"
ERRORS = {  # name: (HTTP status, DynamoDB error code)
    "throttling": (400, "ProvisionedThroughputExceededException"),
    "request-limit": (400, "ThrottlingException"),
    "internal-error": (500, "InternalServerError"),
    "unavailable": (503, "ServiceUnavailable"),
}


@dataclass
class Fault:
    """Fail calls of `operation` ("*": any) for which `when(request)` holds,
    `times` times (None: for good)."""
    operation: str
    error: str = "throttling"
    times: Optional[int] = None
    when: Callable = lambda request: True
    injected: int = 0

    def applies(self, operation, request):
        return (self.operation in ("*", operation)
                and (self.times is None or self.injected < self.times)
                and self.when(request))


class Faults:
    def __init__(self):
        self.faults = []
        self.calls = Counter()

    def add(self, operation, **options):
        fault = Fault(operation, **options)
        self.faults.append(fault)
        return fault

    def clear(self):
        self.faults = []

    def _first(self, operation, request):
        return next((fault for fault in self.faults
                     if fault.applies(operation, request)), None)

    def before_call(self, model, params, context, **_):
        operation = model.name
        self.calls[operation] += 1
        request = json.loads(params.get("body") or b"{}")
        fault = self._first(operation, request)
        if fault is None:
            return None
        fault.injected += 1
        if fault.error == "connection":
            raise EndpointConnectionError(endpoint_url=ENDPOINT)
        if fault.error == "timeout-after-write":
            context["fail_after_write"] = True  # see after_call
            return None
        if fault.error == "unprocessed":
            answer = {"UnprocessedItems": request["RequestItems"]}
            return AWSResponse(ENDPOINT, 200, {}, None), answer
        status, code = ERRORS[fault.error]
        answer = {"Error": {"Code": code, "Message": "injected by the test"},
                  "ResponseMetadata": {"HTTPStatusCode": status}}
        return AWSResponse(ENDPOINT, status, {}, None), answer

    def after_call(self, context, **_):
        if context.get("fail_after_write"):
            raise ReadTimeoutError(endpoint_url=ENDPOINT)


@pytest.fixture
def faults(client):
    """Fault injection on every model's DynamoDB client, for one test."""
    injector = Faults()
    events = {id(model._get_connection().connection.client):
              model._get_connection().connection.client.meta.events
              for model in model_classes()}.values()
    for emitter in events:
        emitter.register("before-call.dynamodb", injector.before_call)
        emitter.register("after-call.dynamodb", injector.after_call)
    yield injector
    for emitter in events:
        emitter.unregister("before-call.dynamodb", injector.before_call)
        emitter.unregister("after-call.dynamodb", injector.after_call)


# -- REST calls ---------------------------------------------------------------

def post_messages(client, queue, bodies):
    return client.http.post(f"/v2/queues/{queue}/messages", headers=headers(),
                            body=json.dumps({"messages": [{"body": b} for b in bodies]}))


def claim(client, queue, limit=20, ttl=60):
    return client.http.post(f"/v2/queues/{queue}/claims?limit={limit}", headers=headers(),
                            body=json.dumps({"ttl": ttl, "grace": 60}))


def stored_bodies(client, queue):
    """Every stored message's body, claimed or not, in queue order."""
    bodies, path = [], f"/v2/queues/{queue}/messages?echo=true&include_claimed=true&limit=20"
    while True:
        answer = client.http.get(path, headers=headers())
        assert answer.status_code == 200, answer.body
        page = answer.json_body
        if not page["messages"]:
            return bodies
        bodies += [message["body"] for message in page["messages"]]
        path = page["links"][0]["href"]


def assert_unavailable(answer):
    assert answer.status_code == 503, answer.body
    body = json.loads(answer.body)
    assert set(body) == {"title", "description"}
    assert body["title"] == "Service temporarily unavailable"
    assert body["description"].endswith("Please try again in a few seconds.")
    assert b"Traceback" not in answer.body


# -- (a) transient faults are absorbed ---------------------------------------

@pytest.mark.parametrize("error", [*ERRORS, "connection"])
def test_transient_burst_is_absorbed(client, faults, error):
    # Five failures in a row: one short of the retry budget of the first call.
    fault = faults.add("*", error=error, times=5)
    answer = post_messages(client, "q", list(range(30)))
    assert answer.status_code == 201, answer.body
    assert fault.injected == 5
    assert stored_bodies(client, "q") == list(range(30))


def after_the_first(matches=lambda request: True):
    """A `when` for Fault: holds for every matching request but the first."""
    seen = []

    def when(request):
        if not matches(request):
            return False
        seen.append(request)
        return len(seen) > 1
    return when


def writes_items(request):
    return any("PutRequest" in entry for entries in request["RequestItems"].values()
               for entry in entries)


def test_burst_on_a_later_batch_chunk_stores_each_message_once(client, faults):
    post_messages(client, "q", ["before"])
    # 30 messages go in two BatchWriteItem calls; the second fails 4 times.
    fault = faults.add("BatchWriteItem", times=4, when=after_the_first(writes_items))
    answer = post_messages(client, "q", list(range(30)))
    assert answer.status_code == 201, answer.body
    assert fault.injected == 4
    assert stored_bodies(client, "q") == ["before", *range(30)]


def reads_messages(request):
    """A Query of message items (not of claim records or timers)."""
    return any(value.get("S", "").startswith("m#")
               for value in request.get("ExpressionAttributeValues", {}).values())


@pytest.mark.parametrize("request_kind", ["list", "claim"])
def test_transient_query_throttling_is_absorbed(client, faults, request_kind):
    post_messages(client, "q", list(range(5)))
    fault = faults.add("Query", times=1, when=reads_messages)
    if request_kind == "list":
        answer = client.http.get("/v2/queues/q/messages?echo=true", headers=headers())
        assert answer.status_code == 200, answer.body
        assert [m["body"] for m in answer.json_body["messages"]] == list(range(5))
    else:
        answer = claim(client, "q")
        assert answer.status_code == 201, answer.body
        assert len(answer.json_body["messages"]) == 5
    assert fault.injected == 1


def test_unprocessed_batch_items_are_resent(client, faults):
    fault = faults.add("BatchWriteItem", error="unprocessed", times=1)
    answer = post_messages(client, "q", list(range(5)))
    assert fault.injected == 1
    assert answer.status_code == 201, answer.body
    assert stored_bodies(client, "q") == list(range(5))


# -- (b) persistent faults give 503 -------------------------------------------

REQUESTS = {
    "post": lambda client, ids: post_messages(client, "q", ["x"]),
    "list": lambda client, ids: client.http.get("/v2/queues/q/messages?echo=true",
                                                headers=headers()),
    "get": lambda client, ids: client.http.get(f"/v2/queues/q/messages/{ids[0]}",
                                               headers=headers()),
    "claim": lambda client, ids: claim(client, "q"),
    "delete": lambda client, ids: client.http.delete(f"/v2/queues/q/messages/{ids[0]}",
                                                     headers=headers()),
    "bulk-delete": lambda client, ids: client.http.delete(
        f"/v2/queues/q/messages?ids={','.join(ids)}", headers=headers()),
    "pop": lambda client, ids: client.http.delete("/v2/queues/q/messages?pop=2",
                                                  headers=headers()),
}


@pytest.mark.parametrize("error", ["throttling", "internal-error", "connection"])
@pytest.mark.parametrize("request_kind", REQUESTS)
def test_persistent_fault_gives_503_and_changes_nothing(client, faults, request_kind, error):
    ids = [resource.rsplit("/", 1)[1] for resource in
           post_messages(client, "q", ["a", "b"]).json_body["resources"]]
    fault = faults.add("*", error=error)
    assert_unavailable(REQUESTS[request_kind](client, ids))
    assert fault.injected >= 6  # the whole retry budget was spent
    faults.clear()
    assert stored_bodies(client, "q") == ["a", "b"]
    assert len(claim(client, "q").json_body["messages"]) == 2


# -- (c) a batch post is all or nothing ---------------------------------------

def test_batch_failing_part_way_leaves_nothing_and_retry_stores_once(client, faults):
    post_messages(client, "q", ["before"])
    # 30 messages go in two BatchWriteItem calls; the second keeps failing.
    fault = faults.add("BatchWriteItem", when=after_the_first(writes_items))
    assert_unavailable(post_messages(client, "q", list(range(30))))
    assert fault.injected >= 6
    assert stored_bodies(client, "q") == ["before"]
    assert [m["body"] for m in claim(client, "q").json_body["messages"]] == ["before"]

    faults.clear()
    answer = post_messages(client, "q", list(range(30)))
    assert answer.status_code == 201, answer.body
    assert stored_bodies(client, "q") == ["before", *range(30)]


def test_batch_interrupted_for_good_leaves_nothing(client, faults):
    faults.add("BatchWriteItem", when=after_the_first())  # clean-up fails too
    assert_unavailable(post_messages(client, "q", list(range(30))))
    faults.clear()
    assert stored_bodies(client, "q") == []


# -- claims under faults -----------------------------------------------------

def test_lost_response_to_a_claim_write_loses_no_message(client, faults, clock):
    post_messages(client, "q", ["a", "b", "c"])
    fault = faults.add("UpdateItem", error="timeout-after-write", times=1,
                       when=lambda request: request["Key"]["sk"]["S"].startswith("m#"))
    assert claim(client, "q", ttl=60).status_code == 201
    assert fault.injected == 1
    clock.advance(61)
    answer = claim(client, "q", ttl=60)
    assert sorted(m["body"] for m in answer.json_body["messages"]) == ["a", "b", "c"]


def test_failed_claim_record_write_strands_no_message(client, faults):
    # The claim record is written before any message is taken: when that
    # write fails, the claim fails whole and every message stays free.
    post_messages(client, "q", ["a", "b", "c"])
    faults.add("PutItem")  # the claim record
    assert_unavailable(claim(client, "q", ttl=60))
    faults.clear()
    answer = claim(client, "q", ttl=60)
    assert answer.status_code == 201, answer.body
    assert sorted(m["body"] for m in answer.json_body["messages"]) == ["a", "b", "c"]

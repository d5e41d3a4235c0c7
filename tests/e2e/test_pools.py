"""A pool on a second DynamoDB Local, over real HTTP: the runner on a
pooling stage (on a DynamoDB Local of its own) places a queue of a flavor
there, serves it through every route, notifies its subscribers from that
DynamoDB's stream, and keeps the stage's own DynamoDB free of it."""
import time
import uuid

import boto3
import pytest
import requests

from conftest import CLIENT_ID
from e2e.conftest import launch
from local.launch import free_port
from local.tables import create_pool_table

PROJECT = "pooled"
HEADERS = {"Client-ID": CLIENT_ID, "X-Project-ID": PROJECT}
ADMIN = {**HEADERS, "X-Roles": "admin"}


def until(check, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    return check()


def test_a_queue_on_a_second_dynamodb_local(shared_dynamodb_endpoint, receiver):
    if shared_dynamodb_endpoint is None:
        pytest.skip("needs Java for a second DynamoDB Local")
    # The process's shared DynamoDB Local: a table prefix of this test's own.
    prefix = f"second-{uuid.uuid4().hex[:8]}"
    uri = f"dynamodb://us-east-1/{prefix}?endpoint={shared_dynamodb_endpoint}"
    create_pool_table(uri)

    port = free_port()
    with launch("--schedule-interval", "2", "--dynamodb-port", str(port),
                environment={"POOLING": "true"}) as runner:
        def call(method, path, body=None, headers=HEADERS):
            return requests.request(method, runner.url + path, headers=headers, json=body,
                                    timeout=30)

        assert call("PUT", "/v2/pools/second", {"weight": 1, "uri": uri},
                    ADMIN).status_code == 201
        unreachable = call("PUT", "/v2/pools/gone", {
            "weight": 1, "uri": "dynamodb://us-east-1/x?endpoint=http://127.0.0.1:9"}, ADMIN)
        assert unreachable.json()["description"] == (
            "cannot connect to dynamodb://us-east-1/x?endpoint=http://127.0.0.1:9")
        assert call("PUT", "/v2/flavors/far", {"pool_list": ["second"]},
                    ADMIN).status_code == 201
        assert call("PUT", "/v2/queues/far-away", {"_flavor": "far"}).status_code == 201
        assert call("POST", "/v2/queues/far-away/subscriptions",
                    {"subscriber": f"{receiver.url}/hook", "ttl": 600}).status_code == 201

        posted = call("POST", "/v2/queues/far-away/messages",
                      {"messages": [{"body": {"n": n}, "ttl": 600} for n in range(3)]})
        assert posted.status_code == 201, posted.text
        claimed = call("POST", "/v2/queues/far-away/claims?limit=2", {"ttl": 60})
        assert [m["body"] for m in claimed.json()["messages"]] == [{"n": 0}, {"n": 1}]
        first = claimed.json()["messages"][0]["href"]  # with its ?claim_id=
        assert call("DELETE", first).status_code == 204

        # Notified from the second DynamoDB's stream, as any queue's subscribers are.
        assert until(lambda: len(receiver.bodies()) == 3), receiver.bodies()
        # The deletion counts once that stream is applied.
        assert until(lambda: call("GET", "/v2/queues/far-away/stats").json()["messages"][
            "claimed"] == 1)
        plain = call("POST", "/v2/queues/near/messages", {"messages": [{"body": "here"}]})
        assert plain.status_code == 201

        second = boto3.client("dynamodb", endpoint_url=shared_dynamodb_endpoint,
                              region_name="us-east-1")
        stored = second.scan(TableName=f"{prefix}-messages")["Items"]
        bodies = sorted(item["b"]["S"] for item in stored if "b" in item)
        assert bodies == ['{"n": 1}', '{"n": 2}']
        stage = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}",
                             region_name="us-east-1")
        on_stage = [item["pq"]["S"] for item in stage.scan(TableName="zaqar-dev-messages")[
            "Items"] if item["pq"]["S"].startswith(PROJECT + "/")]
        assert set(on_stage) == {f"{PROJECT}/near"}

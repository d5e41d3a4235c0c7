"""The runner's stand-ins for AWS triggers, on a tiny throwaway Chalice app:
schedules fire, and DynamoDB stream records reach @app.on_dynamodb_record
handlers shaped as Lambda delivers them."""
import threading
import time
import uuid

import boto3
import pytest
from chalice import Chalice, Rate
from chalice.config import Config

from local.event_filters import matches_any
from local.triggers import start_triggers, stop_triggers

REGION = "us-east-1"


def wait_for(condition, timeout=15):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def clients(shared_dynamodb_endpoint, request):
    """DynamoDB and its streams: the process's shared DynamoDB Local (the
    tests' tables have names of their own), or the module's moto without Java."""
    endpoint = shared_dynamodb_endpoint or request.getfixturevalue("dynamodb_endpoint")

    def client(service):
        return boto3.client(service, endpoint_url=endpoint, region_name=REGION)
    return client("dynamodb"), client("dynamodbstreams")


def create_streamed_table(dynamodb, name):
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})


class Recorder:
    """Collects what a handler received; fails the first `failures` calls."""

    def __init__(self, failures=0):
        self.events = []
        self.failures = failures
        self.lock = threading.Lock()

    def handle(self, event):
        with self.lock:
            if self.failures:
                self.failures -= 1
                raise RuntimeError("failing on purpose")
            self.events.append(event)

    def keys(self):
        with self.lock:
            return [record.keys["k"]["S"] for event in self.events for record in event]


def tiny_app(table, stream_handler, schedule_handler=None):
    app = Chalice(app_name="tiny")
    arn = f"arn:aws:dynamodb:{REGION}:123456789012:table/{table}/stream/2020-01-01T00:00:00.000"
    app.on_dynamodb_record(stream_arn=arn, batch_size=10)(stream_handler)
    if schedule_handler:
        app.schedule(Rate(1, unit=Rate.HOURS))(schedule_handler)
    return app, arn


@pytest.fixture
def run_triggers(clients):
    workers = []

    def run(app, **settings):
        config = Config.create(chalice_stage="dev", app_name=app.app_name, **settings)
        workers.extend(start_triggers(app, config, *clients, schedule_interval=0.1,
                                      region=REGION))
    yield run
    stop_triggers(workers)


def test_stream_records_reach_the_handler_as_lambda_sends_them(clients, run_triggers):
    dynamodb, _ = clients
    table, other = f"t-{uuid.uuid4()}", f"o-{uuid.uuid4()}"
    create_streamed_table(dynamodb, table)
    create_streamed_table(dynamodb, other)
    received = Recorder()
    app, arn = tiny_app(table, received.handle)
    run_triggers(app)
    # A write elsewhere first: DynamoDB Local then "trims" iterators taken on
    # an empty shard, which the poller must survive without losing records.
    dynamodb.put_item(TableName=other, Item={"k": {"S": "elsewhere"}})
    for key in ("a", "b", "c"):
        dynamodb.put_item(TableName=table, Item={"k": {"S": key}})
    assert wait_for(lambda: len(received.keys()) >= 3)
    time.sleep(0.5)  # nothing is delivered twice
    assert received.keys() == ["a", "b", "c"]
    record = next(iter(received.events[0]))
    assert record.event_name == "INSERT"
    assert record.event_source_arn == arn
    assert record.table_name == table
    assert record.new_image == {"k": {"S": "a"}}


def test_a_failed_batch_is_retried(clients, run_triggers):
    dynamodb, _ = clients
    table = f"t-{uuid.uuid4()}"
    create_streamed_table(dynamodb, table)
    received = Recorder(failures=1)
    app, _ = tiny_app(table, received.handle)
    run_triggers(app)
    dynamodb.put_item(TableName=table, Item={"k": {"S": "x"}})
    assert wait_for(lambda: received.keys() == ["x"])


def test_a_batch_that_raises_is_split_so_only_the_bad_record_is_dropped(
        clients, run_triggers):
    dynamodb, _ = clients
    table = f"t-{uuid.uuid4()}"
    create_streamed_table(dynamodb, table)
    handled, poison_attempts = [], []

    def handler(event):
        keys = [record.keys["k"]["S"] for record in event]
        if "poison" in keys:
            poison_attempts.append(keys)
            raise ValueError("cannot handle this record")
        handled.extend(keys)

    app, _ = tiny_app(table, handler)
    run_triggers(app)
    for key in ("a", "poison", "c"):
        dynamodb.put_item(TableName=table, Item={"k": {"S": key}})
    assert wait_for(lambda: "c" in handled and ["poison"] in poison_attempts)
    time.sleep(0.5)
    assert handled == ["a", "c"]
    assert poison_attempts.count(["poison"]) == 6  # the first try and 5 retries


def test_reported_item_failures_are_delivered_again_from_the_first_failed(
        clients, run_triggers):
    dynamodb, _ = clients
    table = f"t-{uuid.uuid4()}"
    create_streamed_table(dynamodb, table)
    batches = []

    def handler(event):
        keys = [record.keys["k"]["S"] for record in event]
        batches.append(keys)
        if "b" in keys and sum(batch.count("b") for batch in batches) == 1:
            failed = next(record for record in event if record.keys["k"]["S"] == "b")
            return {"batchItemFailures": [{"itemIdentifier": failed.sequence_number}]}
        return None

    app, _ = tiny_app(table, handler)
    run_triggers(app)
    for key in ("a", "b", "c"):
        dynamodb.put_item(TableName=table, Item={"k": {"S": key}})
    assert wait_for(lambda: sum(batch.count("c") for batch in batches) >= 1
                    and sum(batch.count("b") for batch in batches) == 2)
    assert sum(batch.count("a") for batch in batches) == 1
    first, retry = [batch for batch in batches if "b" in batch]
    assert retry == first[first.index("b"):]


def test_stream_filters_keep_records_from_the_handler(clients, run_triggers):
    dynamodb, _ = clients
    table = f"t-{uuid.uuid4()}"
    create_streamed_table(dynamodb, table)
    received = Recorder()
    app, _ = tiny_app(table, received.handle)
    run_triggers(app, stream_filters=[
        {"eventName": ["INSERT"], "dynamodb": {"Keys": {"k": {"S": [{"prefix": "m#"}]}}}}])
    for key in ("s", "m#1", "c#1", "m#2"):
        dynamodb.put_item(TableName=table, Item={"k": {"S": key}})
    dynamodb.put_item(TableName=table, Item={"k": {"S": "m#1"}, "v": {"N": "1"}})  # MODIFY
    assert wait_for(lambda: received.keys() == ["m#1", "m#2"])
    time.sleep(0.5)
    assert received.keys() == ["m#1", "m#2"]


@pytest.mark.parametrize("pattern, record, expected", [
    ({"a": [{"exists": False}]}, {"b": 1}, True),
    ({"a": [{"exists": False}]}, {"a": 1}, False),
    ({"a": [{"anything-but": ["x", "y"]}]}, {"a": "z"}, True),
    ({"a": [{"anything-but": {"prefix": "x"}}]}, {"a": "xz"}, False),
    ({"a": [{"numeric": [">", 1, "<=", 5]}]}, {"a": 5}, True),
    ({"a": [{"numeric": [">", 1, "<=", 5]}]}, {"a": 6}, False),
    ({"a": ["x", "y"]}, {"a": ["q", "y"]}, True),
    ({"a": {"b": ["x"]}}, {"a": "x"}, False),
])
def test_filter_matchers(pattern, record, expected):
    assert matches_any([pattern], record) is expected


def test_schedules_fire_at_the_local_interval(clients, run_triggers):
    dynamodb, _ = clients
    table = f"t-{uuid.uuid4()}"
    create_streamed_table(dynamodb, table)
    fired = []

    def sweep(event):
        fired.append((event, event.context.get_remaining_time_in_millis()))

    app, _ = tiny_app(table, Recorder().handle, schedule_handler=sweep)
    run_triggers(app, lambda_timeout=1)
    assert wait_for(lambda: len(fired) >= 12, timeout=10)  # past the 1 s timeout
    event, remaining_ms = fired[-1]
    assert event.detail_type == "Scheduled Event"
    assert event.resources[0].endswith(":rule/sweep")
    # Each run gets a fresh context: the whole timeout is left at its start,
    # in whole milliseconds as on Lambda.
    assert 900 < remaining_ms <= 1000
    assert isinstance(remaining_ms, int)
    assert event.context.aws_request_id != fired[0][0].context.aws_request_id

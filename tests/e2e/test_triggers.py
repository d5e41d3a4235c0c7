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
def clients(dynamodb_endpoint):
    def client(service):
        return boto3.client(service, endpoint_url=dynamodb_endpoint, region_name=REGION)
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

    def run(app):
        config = Config.create(chalice_stage="dev", app_name=app.app_name)
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


def test_schedules_fire_at_the_local_interval(clients, run_triggers):
    dynamodb, _ = clients
    table = f"t-{uuid.uuid4()}"
    create_streamed_table(dynamodb, table)
    fired = []
    app, _ = tiny_app(table, Recorder().handle, schedule_handler=fired.append)
    run_triggers(app)
    assert wait_for(lambda: len(fired) >= 3, timeout=5)
    assert fired[0].detail_type == "Scheduled Event"
    assert fired[0].resources[0].endswith(":rule/append")

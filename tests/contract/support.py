"""What the contract, concurrency and fault tests share: settings naming a
DynamoDB endpoint and the storage driver built from them, a caller's context.

The tests run the same storage code against moto and against DynamoDB Local
in one process: `storage_at` gives the settings of another endpoint for a
block, as a stage's would, and the caller's context carries them, so the
actions build their driver from them as they do on every request.
"""
import atexit
import contextlib
import dataclasses
import uuid

from chalicelib.actions import messages
from chalicelib.config import get_settings
from chalicelib.storage import dynamodb, models
from chalicelib.validation import Context
from local import dynamodb_local
from local.tables import create_tables

CLIENT_ID = "3381af92-2b9e-11e3-b191-71861300734c"


def model_classes():
    """Every pynamodb model of the storage layer (some share a Meta class)."""
    return models.service_models()


@contextlib.contextmanager
def storage_at(host):
    """The stage's settings with DynamoDB at `host` (None: the region's
    endpoint, which moto intercepts), storage's driver built from them until
    the block ends (tests that read the tables themselves use it too)."""
    settings = dataclasses.replace(get_settings(), dynamodb_endpoint=host or "")
    dynamodb.driver(settings)
    try:
        yield settings
    finally:
        dynamodb.driver(get_settings())


_shared_server = []


def shared_dynamodb_local():
    """The endpoint of this process's in-memory DynamoDB Local, with the
    service's tables. Started on first use and stopped when the process
    exits, so the contract and concurrency tests share one JVM (~200 MB,
    seconds to start) per pytest worker. The caller checks for Java."""
    if not _shared_server:
        server = dynamodb_local.start()
        atexit.register(server.stop)
        _shared_server.append(server)
        with storage_at(server.endpoint) as settings:
            create_tables(settings)
    return _shared_server[0].endpoint


def new_project():
    """A project id no other test uses: tests sharing one DynamoDB Local
    stay apart without recreating tables."""
    return f"contract-{uuid.uuid4().hex[:12]}"


def context(project, settings, client_id=CLIENT_ID):
    """What the actions need to know about the caller, as the REST layer
    builds it; `settings` name the backend the actions build storage for."""
    return Context(project=project, client_id=client_id, roles=frozenset(),
                   settings=settings)


def post(ctx, queue, count, start=0, **fields):
    """Post `count` messages with bodies {"n": start, ...} through the action;
    returns their ids."""
    batch = [dict(fields, body={"n": start + i}) for i in range(count)]
    return messages.post(ctx, queue, {"messages": batch})

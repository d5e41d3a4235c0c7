"""Test set-up: the dev stage's environment, with moto standing in for AWS.

Dummy credentials are set before anything creates a botocore client (one made
earlier would talk to real AWS). Storage takes its tables from the settings
each request (or create_tables) builds from the stage's variables.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local.stage import stage_environment  # noqa: E402

os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
})
os.environ.update(stage_environment("dev"))
os.environ.pop("DYNAMODB_ENDPOINT", None)

import moto  # noqa: E402
import pytest  # noqa: E402
from chalice.test import Client  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "packaging: builds the AWS package (~15 s); select with -m packaging")


CLIENT_ID = "3381af92-2b9e-11e3-b191-71861300734c"
PROJECT = "test-project"


@pytest.fixture
def aws():
    with moto.mock_aws():
        from local.tables import create_tables
        create_tables()
        yield


@pytest.fixture
def clock(monkeypatch):
    """The service's clock, standing still until the test moves it."""
    from chalicelib import clock as service_clock
    from local.clock import FakeClock
    fake = FakeClock()
    monkeypatch.setattr(service_clock, "now_ms", fake)
    return fake


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.1 (local/webhook_receiver.py)."""
    from local.webhook_receiver import WebhookReceiver
    server = WebhookReceiver()
    yield server
    server.close()


@pytest.fixture
def app(aws):
    import app as app_module
    return app_module.app


@pytest.fixture
def client(app):
    with Client(app, stage_name="dev", project_dir=str(ROOT)) as test_client:
        yield test_client


def headers(project=PROJECT, client_id=CLIENT_ID, **extra):
    """The identity headers every v2 request needs, plus any others."""
    base = {"Client-ID": client_id, "X-Project-ID": project}
    base.update({key.replace("_", "-"): value for key, value in extra.items()})
    return base

"""The contract suite: every test runs against moto and DynamoDB Local,
through the storage driver built from each one's settings.

moto is lenient where AWS is strict (more than 25 items per BatchWriteItem,
unused expression values, races between concurrent requests); DynamoDB Local
behaves like AWS. Storage behaviour that holds on both is behaviour we can
rely on.
"""
import moto
import pytest

from chalicelib.storage import dynamodb
from contract.support import context, new_project, shared_dynamodb_local, storage_at
from local import dynamodb_local
from local.tables import create_tables


@pytest.fixture(scope="session")
def dynamodb_local_endpoint():
    """DynamoDB Local for the session; tests keep apart by project."""
    if not dynamodb_local.java_available():
        pytest.skip("Java is not installed, so DynamoDB Local cannot run")
    return shared_dynamodb_local()


@pytest.fixture(params=["moto", "dynamodb-local"])
def backend(request):
    """The settings of the test's backend configuration."""
    if request.param == "moto":
        with moto.mock_aws(), storage_at(None) as settings:
            create_tables(settings)
            yield settings
        return
    endpoint = request.getfixturevalue("dynamodb_local_endpoint")
    with storage_at(endpoint) as settings:
        yield settings


@pytest.fixture
def store(backend):
    """The driver those settings build, for tests that call storage itself."""
    return dynamodb.driver(backend)


@pytest.fixture
def ctx(backend, clock):
    """A caller in a project of its own, on the test's backend, with time
    frozen until the test moves it."""
    return context(new_project(), backend)

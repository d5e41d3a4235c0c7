"""The contract suite: every test runs against moto and DynamoDB Local.

moto is lenient where AWS is strict (more than 25 items per BatchWriteItem,
unused expression values, races between concurrent requests); DynamoDB Local
behaves like AWS. Storage behaviour that holds on both is behaviour we can
rely on.
"""
import moto
import pytest

from contract.support import context, models_at, new_project, shared_dynamodb_local
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
    if request.param == "moto":
        with moto.mock_aws():
            create_tables()
            yield request.param
        return
    endpoint = request.getfixturevalue("dynamodb_local_endpoint")
    with models_at(endpoint):
        yield request.param


@pytest.fixture
def ctx(backend, clock):
    """A caller in a project of its own, on the test's backend, with time
    frozen until the test moves it."""
    return context(new_project())

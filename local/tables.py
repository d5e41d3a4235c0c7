"""Create the service's tables where none exist (DynamoDB Local, moto).

On AWS the tables come from the CloudFormation template (infra/); both follow
the pynamodb models in chalicelib/storage/models.py.
"""
from pynamodb.exceptions import TableError

from chalicelib.config import get_settings
from chalicelib.storage.models import ALL_MODELS, TTL_ATTRIBUTE, configure
from chalicelib.storage.retry import retrying


def create_tables(settings=None):
    """The tables `settings` name (default: the environment's stage), with
    storage pointed at them."""
    configure(settings or get_settings())
    for model in ALL_MODELS:
        if retrying(model.exists):
            continue
        try:
            retrying(model.create_table, billing_mode="PAY_PER_REQUEST", wait=True)
        except TableError as error:
            # On a busy machine the first CreateTable can outlast the models'
            # read timeout and still succeed: the retry then finds it.
            if error.cause_response_code != "ResourceInUseException":
                raise
        connection = model._get_connection().connection
        retrying(connection.client.update_time_to_live,
                 TableName=model.Meta.table_name,
                 TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE})


def delete_tables():
    for model in ALL_MODELS:
        if model.exists():
            model.delete_table()

"""Create the service's tables where none exist (DynamoDB Local, moto), and
a pool's messages table:

    python -m local.tables --pool 'dynamodb://us-east-1/zaqar-dev-pool-a?endpoint=http://127.0.0.1:8001'

On AWS the stage's tables come from the CloudFormation template (infra/);
all follow the pynamodb models in chalicelib/storage/models.py.
"""
import argparse

from pynamodb.exceptions import TableError

from chalicelib.config import get_settings
from chalicelib.storage import places
from chalicelib.storage.models import ALL_MODELS, TTL_ATTRIBUTE, MessageRecord, configure
from chalicelib.storage.retry import retrying


def _create(model):
    if retrying(model.exists):
        return
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


def create_tables(settings=None):
    """The tables `settings` name (default: the environment's stage), with
    storage pointed at them."""
    configure(settings or get_settings())
    for model in ALL_MODELS:
        _create(model)


def create_pool_table(uri):
    """The messages table of the pool `uri` names (storage/places.py)."""
    with places.at(uri):
        _create(MessageRecord)


def delete_tables():
    for model in ALL_MODELS:
        if model.exists():
            model.delete_table()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", required=True, metavar="URI",
                        help="a pool's URI: dynamodb://<region>/<prefix>[?endpoint=<url>]")
    create_pool_table(parser.parse_args().pool)

"""`make run DYNAMODB_ENDPOINT=...`: the runner on a DynamoDB it did not
start, creating the tables it misses there and keeping its data there."""
import boto3
import pytest
import requests

from conftest import CLIENT_ID
from e2e.conftest import launch

HEADERS = {"Client-ID": CLIENT_ID, "X-Project-ID": "elsewhere"}


def test_the_runner_keeps_its_data_on_the_given_dynamodb(dynamodb_endpoint):
    if dynamodb_endpoint is None:
        pytest.skip("needs Java for a DynamoDB Local of its own")
    dynamodb = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")
    assert dynamodb.list_tables()["TableNames"] == []

    with launch("--dynamodb-endpoint", dynamodb_endpoint) as runner:
        posted = requests.post(f"{runner.url}/v2/queues/kept/messages", headers=HEADERS,
                               json={"messages": [{"body": "on the given DynamoDB", "ttl": 300}]},
                               timeout=30)
        assert posted.status_code == 201, posted.text

    # The runner is gone; the tables and the message stay where it put them.
    assert {"zaqar-dev-queues", "zaqar-dev-messages", "zaqar-dev-subscriptions",
            "zaqar-dev-connections"} <= set(dynamodb.list_tables()["TableNames"])
    items = dynamodb.scan(TableName="zaqar-dev-messages")["Items"]
    assert [item["b"]["S"] for item in items if "b" in item] == ['"on the given DynamoDB"']

    with launch("--dynamodb-endpoint", dynamodb_endpoint) as runner:
        listed = requests.get(f"{runner.url}/v2/queues/kept/messages?echo=true",
                              headers=HEADERS, timeout=30)
        assert listed.status_code == 200, listed.text
        assert [message["body"] for message in listed.json()["messages"]] == [
            "on the given DynamoDB"]

"""The messages table's stream as a test reads it (moto)."""
import boto3

from chalicelib.storage.models import MessageRecord


def stream_records():
    """Every record of the messages table's stream so far (moto)."""
    table = MessageRecord.Meta.table_name
    arn = boto3.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams")
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"],
            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records += streams.get_records(ShardIterator=iterator)["Records"]
    return records

"""Stats count what returned to its caller: posts, claims, renewals and
releases at once, deletions once the stream handler has applied them; holds
that end by themselves until the end of their minute (storage/stats.py)."""
import boto3
import pytest

from chalicelib.actions import claims, messages, queues
from chalicelib.errors import ServiceUnavailable
from chalicelib.storage import messages as message_store
from chalicelib.storage import stats as stats_store
from chalicelib.storage.models import MessageRecord
from contract.support import post


def counts(ctx, queue):
    shown, _ = queues.stats(ctx, queue)
    return {key: shown[key] for key in ("claimed", "delayed", "free", "total")}


def apply_stream(ctx):
    """Hand the stream handler every record of the caller's project so far."""
    endpoint = ctx.settings.dynamodb_endpoint or None
    table = boto3.client("dynamodb", endpoint_url=endpoint).describe_table(
        TableName=MessageRecord.Meta.table_name)["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint)
    records = []
    for shard in streams.describe_stream(StreamArn=table)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=table, ShardId=shard["ShardId"],
            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    mine = [r for r in records
            if r["dynamodb"]["Keys"]["pq"]["S"].startswith(ctx.project + "/")]
    assert stats_store.apply_stream_records(mine) == []


def test_posts_and_claims_count_at_once(ctx):
    ids = post(ctx, "q", 3)
    shown, exists = queues.stats(ctx, "q")
    assert exists
    assert shown["free"] == 3 and shown["total"] == 3
    assert shown["oldest"]["id"] == ids[0]
    assert shown["newest"]["id"] == ids[-1]
    claims.create(ctx, "q", {"ttl": 120}, limit=2)
    assert counts(ctx, "q") == {"claimed": 2, "delayed": 0, "free": 1, "total": 3}


def test_renewal_keeps_and_release_ends_the_count(ctx, clock):
    post(ctx, "q", 4)
    claim_id, _ = claims.create(ctx, "q", {"ttl": 60}, limit=3)
    claims.update(ctx, "q", claim_id, {"ttl": 600})
    clock.advance(180)  # past the first ttl's minute, within the renewal's
    assert counts(ctx, "q") == {"claimed": 3, "delayed": 0, "free": 1, "total": 4}
    claims.delete(ctx, "q", claim_id)
    assert counts(ctx, "q") == {"claimed": 0, "delayed": 0, "free": 4, "total": 4}


def test_delays_count_until_their_minute_ends(ctx, clock):
    queues.create(ctx, "q", {"_default_message_delay": 30})
    post(ctx, "q", 2, delay=0)
    post(ctx, "q", 1, delay=30)
    assert counts(ctx, "q") == {"claimed": 0, "delayed": 1, "free": 2, "total": 3}
    clock.advance(120)
    assert counts(ctx, "q") == {"claimed": 0, "delayed": 0, "free": 3, "total": 3}


def test_a_claim_that_runs_out_counts_until_the_end_of_its_minute(ctx, clock):
    post(ctx, "q", 2)
    claims.create(ctx, "q", {"ttl": 60}, limit=1)
    clock.advance(61)
    assert counts(ctx, "q")["claimed"] in (0, 1)  # within the minute it ended in: either
    clock.advance(60)
    assert counts(ctx, "q") == {"claimed": 0, "delayed": 0, "free": 2, "total": 2}


def test_deletions_count_once_the_stream_is_applied(ctx):
    ids = post(ctx, "q", 6)
    claim_id, taken = claims.create(ctx, "q", {"ttl": 120}, limit=2)
    messages.delete(ctx, "q", taken[0].id, claim_id)
    messages.delete_many(ctx, "q", ids[4:])
    messages.pop_messages(ctx, "q", 1)
    apply_stream(ctx)
    assert counts(ctx, "q") == {"claimed": 1, "delayed": 0, "free": 1, "total": 2}
    apply_stream(ctx)  # a batch delivered again counts once
    assert counts(ctx, "q")["total"] == 2


def test_purge_and_a_new_queue_of_the_name_start_from_nothing(ctx):
    post(ctx, "q", 3)
    claims.create(ctx, "q", {"ttl": 120}, limit=1)
    queues.purge(ctx, "q", {"resource_types": ["messages"]})
    assert counts(ctx, "q") == {"claimed": 0, "delayed": 0, "free": 0, "total": 0}
    ids = post(ctx, "q", 2)
    assert counts(ctx, "q")["free"] == 2
    assert queues.stats(ctx, "q")[0]["oldest"]["id"] == ids[0]
    queues.delete(ctx, "q")
    post(ctx, "q", 1)
    apply_stream(ctx)
    assert counts(ctx, "q") == {"claimed": 0, "delayed": 0, "free": 1, "total": 1}


def test_a_failed_post_takes_its_count_back(ctx, monkeypatch):
    queues.create(ctx, "q", {"_default_message_delay": 60})
    post(ctx, "q", 1, delay=0)
    real_write = message_store.write_within

    def write_first_chunk_then_fail(records, deadline):
        real_write(records[:25], deadline)
        raise ServiceUnavailable()
    monkeypatch.setattr(message_store, "write_within", write_first_chunk_then_fail)
    with pytest.raises(ServiceUnavailable):
        post(ctx, "q", 30)
    assert counts(ctx, "q") == {"claimed": 0, "delayed": 0, "free": 1, "total": 1}
    apply_stream(ctx)  # the removal of the 25 that landed does not count again
    assert counts(ctx, "q") == {"claimed": 0, "delayed": 0, "free": 1, "total": 1}

"""Pools and flavors: a queue created with a flavor keeps all its messages,
claims and state on its flavor's pool (a second set of tables), a queue
without one stays on the stage's, and the registry keeps its rules (no
unreachable pool, no deleting a pool a flavor uses)."""
import dataclasses
import uuid

import boto3
import pytest

from chalicelib.actions import claims, messages, pools, queues
from chalicelib.errors import BadRequest, Forbidden, NotFound
from chalicelib.storage import dynamodb, places, sweeper
from chalicelib.storage import stats as stats_store
from chalicelib.storage.models import MessageRecord, queue_key
from contract.support import context, new_project, post
from local.tables import create_pool_table


def pool_uri(settings, prefix):
    endpoint = settings.dynamodb_endpoint
    return (f"dynamodb://{settings.aws_region}/{prefix}"
            + (f"?endpoint={endpoint}" if endpoint else ""))


@pytest.fixture(scope="module")
def pool_tables():
    """The module's pool tables on DynamoDB Local, by endpoint and role:
    creating and deleting one there takes seconds, so its tests share them
    (their items keep apart by project, like the stage's). moto's mock is a
    test's own: there each test gets its own."""
    made = {}

    def table(settings, role):
        endpoint = settings.dynamodb_endpoint
        if endpoint and (endpoint, role) in made:
            return made[endpoint, role]
        uri = pool_uri(settings, f"{role}-{uuid.uuid4().hex[:8]}")
        create_pool_table(uri)
        if endpoint:
            made[endpoint, role] = uri
        return uri
    yield table
    for uri in made.values():
        with places.at(uri):
            MessageRecord.delete_table()


@pytest.fixture
def pooling(backend, clock, pool_tables):
    """An administrator on a pooling stage, and the URI of a second set of
    tables on the same backend (a pool's)."""
    settings = dataclasses.replace(backend, pooling=True, admin_mode=True)
    uri = pool_tables(settings, "pool")
    ctx = dataclasses.replace(context(new_project(), settings), roles=frozenset({"admin"}))
    yield ctx, uri
    # The backend, its sweeps and the pool tables are shared: the test's
    # queues go, and since pools and flavors are the stage's, not a
    # project's, each test's own go too.
    for queue, _ in dynamodb.driver(settings).queues.list_page(ctx.project, limit=100):
        queues.delete(ctx, queue)
    for flavor in pools.list_flavors(ctx, None, 20):
        if flavor.name.endswith(name(ctx, "")):
            pools.delete_flavor(ctx, flavor.name)
    for pool in pools.list_pools(ctx, None, 20):
        if pool.name.endswith(name(ctx, "")):
            pools.delete_pool(ctx, pool.name)


def name(ctx, base):
    """A pool's or flavor's name of this test's own (the backend is shared)."""
    return f"{base}-{ctx.project[-12:]}"


def items_at(uri, ctx, queue):
    """The sort keys stored for the queue in the table at `uri` (None: the stage's)."""
    with places.at(uri):
        return [item.sk for item in MessageRecord.query(queue_key(ctx.project, queue))]


def apply_pool_stream(ctx, uri):
    """The stats handler given the caller's records of the pool's stream,
    each named by its stream's ARN, as Lambda names them."""
    place = places.parse(uri)
    dynamodb = boto3.client("dynamodb", endpoint_url=place.endpoint, region_name=place.region)
    streams = boto3.client("dynamodbstreams", endpoint_url=place.endpoint,
                           region_name=place.region)
    arn = dynamodb.describe_table(TableName=place.table("messages_table"))["Table"][
        "LatestStreamArn"]
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    mine = [dict(record, eventSourceARN=arn) for record in records
            if record["dynamodb"]["Keys"]["pq"]["S"].startswith(ctx.project + "/")]
    assert stats_store.apply_stream_records(mine) == []


def gold(ctx, uri):
    """Pool p1 at `uri`, the one pool of flavor gold; returns their names."""
    pool, flavor = name(ctx, "p1"), name(ctx, "gold")
    pools.create_pool(ctx, pool, {"weight": 10, "uri": uri})
    pools.create_flavor(ctx, flavor, {"pool_list": [pool]})
    return pool, flavor


def test_a_queue_of_a_flavor_keeps_its_messages_on_the_flavors_pool(pooling):
    ctx, uri = pooling
    _, flavor = gold(ctx, uri)
    assert queues.create(ctx, "placed", {"_flavor": flavor})
    ids = post(ctx, "placed", 5)
    claim_id, taken = claims.create(ctx, "placed", {"ttl": 60}, limit=2)
    messages.delete(ctx, "placed", taken[0].id, claim_id)

    assert [m.id for m in taken] == ids[:2]
    listed, _, _ = messages.list_messages(ctx, "placed", echo=True, include_claimed=True)
    assert [m.id for m in listed] == ids[1:]
    assert messages.get(ctx, "placed", ids[4]).body == {"n": 4}
    apply_pool_stream(ctx, uri)  # as Lambda hands a pool's stream to the handler
    assert {key: queues.stats(ctx, "placed")[0][key] for key in ("claimed", "free")} == {
        "claimed": 1, "free": 3}
    stored = items_at(uri, ctx, "placed")
    assert {f"m#{message_id}" for message_id in ids[1:]} <= set(stored)
    assert "s" in stored  # the queue's state too
    assert items_at(None, ctx, "placed") == []


def test_a_queue_without_a_flavor_stays_on_the_stage_tables(pooling):
    ctx, uri = pooling
    gold(ctx, uri)
    ids = post(ctx, "plain", 3)

    listed, _, _ = messages.list_messages(ctx, "plain", echo=True)
    assert [m.id for m in listed] == ids
    assert items_at(uri, ctx, "plain") == []
    assert {f"m#{message_id}" for message_id in ids} <= set(items_at(None, ctx, "plain"))


def test_a_pool_of_weight_0_gets_no_queue(pooling, pool_tables):
    ctx, uri = pooling
    idle = pool_tables(ctx.settings, "idle")
    heavy, resting, flavor = name(ctx, "heavy"), name(ctx, "idle"), name(ctx, "gold")
    pools.create_pool(ctx, heavy, {"weight": 100, "uri": uri})
    pools.create_pool(ctx, resting, {"weight": 0, "uri": idle})
    pools.create_flavor(ctx, flavor, {"pool_list": [heavy, resting]})
    for n in range(4):
        queues.create(ctx, f"q{n}", {"_flavor": flavor})
        post(ctx, f"q{n}", 1)
        assert (len(items_at(uri, ctx, f"q{n}")), items_at(idle, ctx, f"q{n}")) == (2, [])


def test_an_unknown_flavor_is_refused_and_creates_nothing(pooling):
    ctx, _ = pooling
    silver = name(ctx, "silver")
    with pytest.raises(BadRequest, match=f"Flavor {silver} does not exist"):
        queues.create(ctx, "q", {"_flavor": silver})
    assert queues.get(ctx, "q") == {}


def test_a_pool_whose_tables_cannot_be_reached_is_refused(pooling):
    ctx, _ = pooling
    missing = pool_uri(ctx.settings, "no-such-prefix")
    refused_pool = name(ctx, "p")
    with pytest.raises(BadRequest) as refused:
        pools.create_pool(ctx, refused_pool, {"weight": 1, "uri": missing})
    assert refused.value.description == f"cannot connect to {missing}"
    with pytest.raises(BadRequest, match="not a pool's"):
        pools.create_pool(ctx, refused_pool, {"weight": 1, "uri": "redis://127.0.0.1:6379"})
    with pytest.raises(NotFound):
        pools.get_pool(ctx, refused_pool)


def test_a_pool_a_flavor_uses_cannot_be_deleted(pooling):
    ctx, uri = pooling
    pool, flavor = gold(ctx, uri)
    with pytest.raises(Forbidden) as refused:
        pools.delete_pool(ctx, pool)
    assert refused.value.title == "Unable to delete"
    assert pools.get_pool(ctx, pool).flavor == flavor

    pools.delete_flavor(ctx, flavor)
    pools.delete_pool(ctx, pool)
    with pytest.raises(NotFound):
        pools.get_pool(ctx, pool)


def test_a_flavor_regroups_its_pools(pooling):
    ctx, uri = pooling
    a, b, flavor = name(ctx, "a"), name(ctx, "b"), name(ctx, "gold")
    for pool in (a, b):
        pools.create_pool(ctx, pool, {"weight": 1, "uri": uri})
    pools.create_flavor(ctx, flavor, {"pool_list": [a, b]})
    assert pools.shown_flavor(ctx, pools.get_flavor(ctx, flavor))["pool_list"] == [a, b]
    pools.update_flavor(ctx, flavor, {"pool_list": [b]})
    assert (pools.get_pool(ctx, a).flavor, pools.get_pool(ctx, b).flavor) == (None, flavor)
    with pytest.raises(BadRequest, match="does not exist"):
        pools.update_flavor(ctx, flavor, {"pool_list": [b, name(ctx, "c")]})


def test_the_sweeper_removes_a_deleted_pooled_queues_leftovers(pooling, clock):
    ctx, uri = pooling
    _, flavor = gold(ctx, uri)
    queues.create(ctx, "gone", {"_flavor": flavor})
    post(ctx, "gone", 3)
    queues.delete(ctx, "gone")

    run = sweeper.run(clock.now + 10_000, ctx.settings)

    assert run.failed == 0
    assert [sk for sk in items_at(uri, ctx, "gone") if sk.startswith("m#")] == []

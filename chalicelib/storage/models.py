"""The DynamoDB data model (see docs/data-model.md for the why).

Where the tables are (names, region, endpoint) comes from each invocation's
settings: `storage.configure(settings)`, at the entry points (app.py's
handlers, the transports), has `configure` point every model at them.

Attribute names are short on purpose: DynamoDB bills item size, names included,
and a message should stay under 1 KB of overhead-free write units.
"""
from pynamodb import constants
from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.connection import TableConnection
from pynamodb.connection.base import MetaTable
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib import storage
from chalicelib.storage import places

MAX_POOL_CONNECTIONS = 64


class _FollowsPlace(type):
    """The Meta of a table pools hold (storage/places.py): inside places.at
    its name, region and endpoint are the pool's, else the stage's (which
    configure() sets). pynamodb reads them from the Meta, batch answers
    included."""

    def _placed(field, of_place):
        """The Meta's `field`: the current place's, else the stage's, which
        setting it (configure) changes."""
        def get(meta):
            place = places.current()
            return getattr(meta, "stage_" + field) if place is None else of_place(place, meta)
        return property(get, lambda meta, value: setattr(meta, "stage_" + field, value))

    table_name = _placed("table_name", lambda place, meta: place.table(meta.table))
    region = _placed("region", lambda place, meta: place.region)
    host = _placed("host", lambda place, meta: place.endpoint)
    del _placed


def _meta(table_setting, stream_view_type=None, pooled=False):
    class Meta(metaclass=_FollowsPlace if pooled else type):
        table = table_setting  # the Settings field naming the table
        # No retry inside botocore (pynamodb counts retries, not attempts):
        # storage.retry decides. botocore's retries would multiply with ours
        # and hide throttling from the 503 path, and a conditional write it
        # retried after a lost answer would fail on its own first attempt
        # where the caller cannot tell (a claim lost the message it held).
        max_retry_attempts = 0
        connect_timeout_seconds = 2
        read_timeout_seconds = 5
        # Above storage.parallel's workers: concurrent requests of one Lambda
        # (a claim's writes) each keep a connection instead of opening one.
        max_pool_connections = MAX_POOL_CONNECTIONS
    # Set from settings by configure(); these are the defaults' values.
    Meta.table_name = f"zaqar-{table_setting.removesuffix('_table')}"
    Meta.region = "us-east-1"
    Meta.host = None
    if stream_view_type:
        Meta.stream_view_type = stream_view_type
    return Meta


# Connections to pools' tables, by model and place (the stage's are pynamodb's
# own, one per model, remade by configure()).
_pool_connections: dict[tuple[type, places.Place], TableConnection] = {}


class PooledModel(Model):
    """A model of the messages table, which pools hold too: inside
    places.at its requests go to the pool's table."""

    @classmethod
    def _get_connection(cls) -> TableConnection:
        place = places.current()
        if place is None:
            return super()._get_connection()
        connection = _pool_connections.get((cls, place))
        if connection is None:
            schema = cls._get_schema()
            meta_table = MetaTable({
                constants.TABLE_NAME: cls.Meta.table_name,
                constants.KEY_SCHEMA: schema["key_schema"],
                constants.ATTR_DEFINITIONS: schema["attribute_definitions"],
                constants.GLOBAL_SECONDARY_INDEXES: [],
                constants.LOCAL_SECONDARY_INDEXES: []})
            connection = _pool_connections.setdefault((cls, place), TableConnection(
                cls.Meta.table_name, region=place.region, host=place.endpoint,
                connect_timeout_seconds=cls.Meta.connect_timeout_seconds,
                read_timeout_seconds=cls.Meta.read_timeout_seconds,
                max_retry_attempts=cls.Meta.max_retry_attempts,
                max_pool_connections=cls.Meta.max_pool_connections,
                meta_table=meta_table))
        return connection


def queue_key(project, queue):
    """Partition key of everything that belongs to one queue.

    Queue names cannot contain "/", so splitting on the last one is unambiguous
    whatever the project id holds.
    """
    return f"{project}/{queue}"


class QueueRecord(Model):
    """One queue: its metadata. Keyed by project so a project's queues list in
    name order with one Query."""
    Meta = _meta("queues_table")
    project = UnicodeAttribute(hash_key=True, attr_name="p")
    name = UnicodeAttribute(range_key=True, attr_name="n")
    metadata = UnicodeAttribute(attr_name="m", default="{}")  # JSON text, as sent
    created = NumberAttribute(attr_name="c")  # epoch ms
    # Lowest message position of this incarnation of the queue: messages left
    # behind by a deleted queue of the same name sit below it and are ignored
    # until the sweeper removes them.
    floor = NumberAttribute(attr_name="f", default=0)
    # The queue's version (see QueueState.version) when this item was written.
    version = NumberAttribute(attr_name="v", null=True)
    # The queue's place in the catalogue, chosen once when it was created with
    # a flavor: the pool's name, and the URI its messages are at (recorded, so
    # that requests need not look the pool up). None: the stage's tables.
    pool = UnicodeAttribute(attr_name="pl", null=True)
    location = UnicodeAttribute(attr_name="lo", null=True)


# Pools and flavors (admin routes, storage/pools.py) are items of the queues
# table under partition keys no project can name (a project id holds no "/",
# as for topics, storage.base.TOPIC_SPACE).
POOLS_KEY = "/pools"
FLAVORS_KEY = "/flavors"


class PoolRecord(Model):
    Meta = QueueRecord.Meta
    kind = UnicodeAttribute(hash_key=True, attr_name="p", default=POOLS_KEY)
    name = UnicodeAttribute(range_key=True, attr_name="n")
    uri = UnicodeAttribute(attr_name="u")
    weight = NumberAttribute(attr_name="w")
    flavor = UnicodeAttribute(attr_name="fl", null=True)
    options = UnicodeAttribute(attr_name="o", default="{}")  # JSON text


class FlavorRecord(Model):
    Meta = QueueRecord.Meta
    kind = UnicodeAttribute(hash_key=True, attr_name="p", default=FLAVORS_KEY)
    name = UnicodeAttribute(range_key=True, attr_name="n")
    capabilities = UnicodeAttribute(attr_name="cp", default="{}")  # JSON text


# The messages table holds, under one partition per queue (`pq`):
#   sk "m#<position>"    a message; its id is the position in 16 hex digits
#   sk "s"               the queue's state: position counter, claim cursor
#   sk "t"               what the stream handler counts for stats (see stats.py)
#   sk "c#<due><rand>"   a claim record or a timer: something that holds
#                        messages until <due> (see claims.py)
#   sk "r#<position>"    a run: positions up to <position> one client
#                        reserved, from its start on (see messages.py)
MESSAGE_PREFIX = "m#"
CLAIM_PREFIX = "c#"
RUN_PREFIX = "r#"
STATE_KEY = "s"
STATS_KEY = "t"  # removals counted from the stream, see stats.py


class MessageRecord(PooledModel):
    # The stream feeds notification delivery (new messages) and the stats
    # counters (which need the old image to see a hold end).
    Meta = _meta("messages_table", stream_view_type="NEW_AND_OLD_IMAGES", pooled=True)
    pq = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    message_id = UnicodeAttribute(attr_name="i")
    body = UnicodeAttribute(attr_name="b")  # JSON text, as posted
    ttl = NumberAttribute(attr_name="t")  # seconds, as reported
    created = NumberAttribute(attr_name="cr")  # epoch ms
    expires = NumberAttribute(attr_name="e")  # epoch ms
    expires_at = NumberAttribute(attr_name="x")  # epoch s: DynamoDB TTL backstop
    client_id = UnicodeAttribute(attr_name="ci", null=True)
    # While a claim (or a delay, see messages.py) holds the message:
    claim_id = UnicodeAttribute(attr_name="cl", null=True)
    claim_expires = NumberAttribute(attr_name="ce", null=True)  # epoch ms
    claim_count = NumberAttribute(attr_name="cc", default=0)
    checksum = UnicodeAttribute(attr_name="md", null=True)
    # Set on the messages of a multi-message post; hidden while the queue's
    # state lists the token as pending (see messages.post).
    batch_token = UnicodeAttribute(attr_name="bt", null=True)


class QueueState(PooledModel):
    Meta = MessageRecord.Meta
    pq = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=STATE_KEY)
    counter = NumberAttribute(attr_name="n", null=True)  # last position handed out
    # Hints kept by claimers (see claims.py): no message below `cursor` is free
    # unless a timer not yet handled covers it; timers up to `checked` are handled.
    cursor = NumberAttribute(attr_name="cu", null=True)
    checked = UnicodeAttribute(attr_name="ck", null=True)
    # While the cursor waits at positions a post may still write (young gaps):
    # those positions (hex -> ms by which their post has landed or died), and
    # where claimers read on from (nothing else in [cursor, ahead) is free
    # unless a timer covers it).
    gaps = MapAttribute(attr_name="gp", null=True)
    ahead = NumberAttribute(attr_name="ah", null=True)
    # Posts still writing: batch token -> deadline (ms). See messages.post.
    pending = MapAttribute(attr_name="pd", null=True)
    # While claimers contend (see claims.py): where the next claim window
    # starts, handed out by atomic ADDs, and when claimers were last seen
    # contending (epoch ms).
    window_end = NumberAttribute(attr_name="w", null=True)
    contended = NumberAttribute(attr_name="ct", null=True)
    # Windows done: start (hex) -> where its claimer left it, nothing free
    # left untried in between; the cursor moves through them (see claims.py).
    done = MapAttribute(attr_name="wd", null=True)
    # Raised before every change to the queue's item (see queues.py): facts
    # of the queue read at another version may be out of date.
    version = NumberAttribute(attr_name="v", null=True)
    # Kept for stats (see stats.py) by writes that happen anyway: messages
    # ever reserved (the post's reservation adds them), and holds by the
    # minute they end, "c<minute>" for claims, "d<minute>" for delays (the
    # claim's, renewal's or release's state write, the delayed post's
    # reservation).
    posted = NumberAttribute(attr_name="np", null=True)
    holds = MapAttribute(attr_name="hs", null=True)
    # The latest run: every position from `run_start` to `counter` was
    # reserved by `run_client` ("": a reservation of no known client). A
    # reservation that starts a new run copies the run it closes to the
    # `closed_*` attributes, so that its answer tells the poster, who writes
    # the run item; the next reservation of the same run removes them.
    run_client = UnicodeAttribute(attr_name="rc", null=True)
    run_start = NumberAttribute(attr_name="rs", null=True)
    closed_client = UnicodeAttribute(attr_name="pc", null=True)
    closed_start = NumberAttribute(attr_name="ps", null=True)


class RunRecord(PooledModel):
    """Positions `start` to the end its key names, all reserved by one client
    (a closed run, see QueueState.run_client): an echo-off listing passes
    them without reading them."""
    Meta = MessageRecord.Meta
    pq = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    start = NumberAttribute(attr_name="a")
    client_id = UnicodeAttribute(attr_name="ci")
    expires_at = NumberAttribute(attr_name="x")  # epoch s: TTL backstop


class ClaimRecord(PooledModel):
    """A claim (sk "c#" + claim id), or a timer (sk "c#" + due + random) that
    wakes claimers when a delay ends, a claim is renewed or released."""
    Meta = MessageRecord.Meta
    pq = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    positions = ListAttribute(of=NumberAttribute, attr_name="ps", default=list)
    expires_at = NumberAttribute(attr_name="x")  # epoch s: TTL backstop
    # A timer names the claim it stands for (absent for a delay timer and on
    # the claim record itself).
    of = UnicodeAttribute(attr_name="of", null=True)
    is_delay = BooleanAttribute(attr_name="d", default=False)
    # Claim records only:
    ttl = NumberAttribute(attr_name="t", null=True)
    grace = NumberAttribute(attr_name="g", null=True)
    updated = NumberAttribute(attr_name="u", null=True)  # ms of create or renew
    expires = NumberAttribute(attr_name="e", null=True)  # ms; release sets it to now


# Partitions of the messages table that belong to no queue (a queue's key
# always contains "/"): the sweeper's work list and its progress.
SWEEP_JOBS_KEY = "~deleted-queues"
SWEEP_PROGRESS_KEY = "~sweeper"


class SweepJob(PooledModel):
    """A deleted queue's partition, whose leftovers the sweeper removes."""
    Meta = MessageRecord.Meta
    pq = UnicodeAttribute(hash_key=True, default=SWEEP_JOBS_KEY)
    sk = UnicodeAttribute(range_key=True)  # the deleted queue's partition key
    deleted = NumberAttribute(attr_name="cr")  # epoch ms


class SweepProgress(PooledModel):
    Meta = MessageRecord.Meta
    pq = UnicodeAttribute(hash_key=True, default=SWEEP_PROGRESS_KEY)
    sk = UnicodeAttribute(range_key=True, default=STATE_KEY)
    queues_from = UnicodeAttribute(attr_name="q", null=True)  # JSON: last key read


class SubscriptionRecord(Model):
    """Subscriptions of a queue; "u#<digest>" items keep subscribers unique."""
    Meta = _meta("subscriptions_table")
    pq = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    subscription_id = UnicodeAttribute(attr_name="i")
    subscriber = UnicodeAttribute(attr_name="s")
    ttl = NumberAttribute(attr_name="t")
    created = NumberAttribute(attr_name="cr")
    expires = NumberAttribute(attr_name="e")
    expires_at = NumberAttribute(attr_name="x")
    options = UnicodeAttribute(attr_name="o", default="{}")
    confirmed = BooleanAttribute(attr_name="cf", default=False)
    # Deliveries that failed for good (refused, or out of retries), and the
    # last such failure: JSON {"time": epoch ms, "description": text}.
    failures = NumberAttribute(attr_name="fd", default=0)
    last_error = UnicodeAttribute(attr_name="le", null=True)


class ConnectionRecord(Model):
    """A live websocket connection (API Gateway connection id)."""
    Meta = _meta("connections_table")
    connection_id = UnicodeAttribute(hash_key=True, attr_name="id")
    project = UnicodeAttribute(attr_name="p", null=True)
    created = NumberAttribute(attr_name="cr")
    expires_at = NumberAttribute(attr_name="x")
    # The subscriptions it made ("queue/id"): they go when it goes.
    subscriptions = UnicodeSetAttribute(attr_name="s", null=True)
    # Who authenticated on it (Keystone mode): the token's roles, user and
    # expiry; its project is `project`.
    roles = UnicodeSetAttribute(attr_name="r", null=True)
    user_id = UnicodeAttribute(attr_name="u", null=True)
    token_expires = NumberAttribute(attr_name="tx", null=True)


class KeysByProject(GlobalSecondaryIndex):
    """A project's keys, for the administrators' listing (never a scan)."""
    class Meta:
        index_name = "by-project"
        projection = AllProjection()
    project = UnicodeAttribute(hash_key=True, attr_name="p")


class KeyRecord(Model):
    """An API key (auth/apikey.py): never the key itself, only its HMAC."""
    Meta = _meta("keys_table")
    by_project = KeysByProject()
    key_id = UnicodeAttribute(hash_key=True, attr_name="i")
    digest = UnicodeAttribute(attr_name="d")  # hex HMAC-SHA256 of the whole key
    project = UnicodeAttribute(attr_name="p")
    roles = UnicodeSetAttribute(attr_name="r", null=True)
    name = UnicodeAttribute(attr_name="n")
    created = NumberAttribute(attr_name="c")  # epoch ms
    expires = NumberAttribute(attr_name="e", null=True)  # epoch ms; None: never
    revoked = BooleanAttribute(attr_name="rv", default=False)
    last_used = NumberAttribute(attr_name="u", null=True)  # epoch ms, to the minute
    # Epoch s: an expired key is kept for listings a while, then reclaimed by TTL.
    expires_at = NumberAttribute(attr_name="x", null=True)


ALL_MODELS = (QueueRecord, MessageRecord, SubscriptionRecord, ConnectionRecord, KeyRecord)
TTL_ATTRIBUTE = "x"


def service_models():
    """Every model of this service (models of one table share a Meta)."""
    pending, found = list(Model.__subclasses__()), []
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        if hasattr(getattr(model, "Meta", None), "table"):
            found.append(model)
    return found


_configured = None


def configure(settings):
    """Point every model at the tables, region and endpoint `settings` name,
    as storage.configure asks (each invocation, with its settings); while
    they stay the same it changes nothing, so a warm Lambda keeps its
    connections."""
    global _configured
    where = (settings.aws_region, settings.dynamodb_endpoint or None,
             settings.queues_table, settings.messages_table,
             settings.subscriptions_table, settings.connections_table,
             settings.keys_table)
    if where == _configured:
        return
    for model in service_models():
        model.Meta.table_name = getattr(settings, model.Meta.table)
        model.Meta.region = settings.aws_region
        model.Meta.host = settings.dynamodb_endpoint or None
        model._connection = None  # made again, for the new place, on next use
    _configured = where


storage.follow(configure)

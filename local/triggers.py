"""Local stand-ins for the AWS triggers `chalice local` does not run:
schedules (EventBridge rules) and DynamoDB stream event sources.

Both work from what the app registered (`app.event_sources`, handlers in
`app.handler_map`), so new `@app.schedule` or `@app.on_dynamodb_record`
handlers run locally without touching this file.
"""
import copy
import datetime
import functools
import json
import logging
import threading
import time
import uuid

from botocore.exceptions import ClientError
from chalice import local as chalice_local
from chalice.app import DynamoDBEventConfig, ScheduledEventConfig

from local.event_filters import matches_any

log = logging.getLogger("local.triggers")
ACCOUNT_ID = "123456789012"
# Shards change rarely (when one closes, its child opens): listing them on
# every poll doubled the idle load on DynamoDB Local.
SHARD_CHECK_SECONDS = 5


class LambdaContext(chalice_local.LambdaContext):
    """Chalice's local context, but counting time as the Lambda runtime does:
    whole milliseconds, never below 0 (Chalice's gives a float)."""

    def get_remaining_time_in_millis(self):
        return max(0, int(super().get_remaining_time_in_millis()))


def context_factory(config, name):
    """Makes a fresh Lambda context per invocation (its remaining time counts
    from its creation), with the function's configured name, memory and timeout."""
    scoped = config.scope(config.chalice_stage, name)
    return functools.partial(
        LambdaContext, function_name=f"{config.app_name}-{config.chalice_stage}-{name}",
        memory_size=scoped.lambda_memory_size or 128,
        max_runtime_ms=(scoped.lambda_timeout or 60) * 1000)


def table_name_of(stream_arn):
    """`arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>` -> name."""
    resource = stream_arn.split(":", 5)[5]
    return resource.split("/")[1]


def list_shards(streams, stream_arn):
    """Every shard of a stream, following DescribeStream's pages."""
    shards, start = [], {}
    while True:
        page = streams.describe_stream(StreamArn=stream_arn, **start)
        shards += page["StreamDescription"]["Shards"]
        last = page["StreamDescription"].get("LastEvaluatedShardId")
        if not last:
            return shards
        start = {"ExclusiveStartShardId": last}


class _Worker(threading.Thread):
    """A daemon thread that calls `step()` every `interval` seconds until stopped."""

    def __init__(self, name, interval):
        super().__init__(name=name, daemon=True)
        self.interval = interval
        self._stopped = threading.Event()

    def run(self):
        while not self._stopped.wait(self.interval):
            self.step()

    def step(self):
        raise NotImplementedError

    def stop(self):
        self._stopped.set()
        self.join()


class ScheduleRunner(_Worker):
    """Fires one `@app.schedule` handler every `interval` seconds, whatever its
    rate or cron: locally, sweeps should run often rather than once a minute."""

    def __init__(self, app, config, source, interval, region):
        super().__init__(f"schedule-{source.name}", interval)
        self.handler = app.handler_map[source.name]
        self.new_context = context_factory(config, source.name)
        self.source = source
        self.region = region

    def event(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
                "source": "aws.events", "account": ACCOUNT_ID,
                "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": self.region,
                "resources": [f"arn:aws:events:{self.region}:{ACCOUNT_ID}:rule/{self.source.name}"],
                "detail": {}}

    def step(self):
        try:
            self.handler(self.event(), self.new_context())
        except Exception:
            log.exception("schedule %s failed", self.source.name)


def failed_sequence_numbers(result):
    """Sequence numbers a handler reported in a partial batch response."""
    if not isinstance(result, dict):
        return []
    return [int(failure["itemIdentifier"]) for failure in result.get("batchItemFailures", [])]


def lambda_record(record, source_arn):
    """A DynamoDB Streams record as Lambda delivers it: epoch-second timestamp,
    plus the event source's ARN."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime.datetime):
        created = created.timestamp()
    if created is not None:
        dynamodb["ApproximateCreationDateTime"] = int(created)
    return dict(record, dynamodb=dynamodb, eventSourceARN=source_arn)


def keep_raw_records(streams):
    """Make `streams.get_records` leave the records as they came on the wire,
    under "RawRecords": the wire form is the one Lambda delivers (DynamoDB
    JSON, epoch timestamps), so botocore's pure-Python parsing of both images
    of every record, which the runner paid on each poll, is not needed."""
    streams.meta.events.register("before-parse.dynamodb-streams.GetRecords",
                                 _set_records_aside, unique_id="local-raw-stream-records")


def _set_records_aside(response_dict, customized_response_dict, **_):
    if response_dict["status_code"] != 200:
        return
    page = json.loads(response_dict["body"])
    customized_response_dict["RawRecords"] = page.pop("Records", [])
    response_dict["body"] = json.dumps(page).encode()


class StreamPoller(_Worker):
    """Feeds one `@app.on_dynamodb_record` handler from the local table's stream.

    The ARN the app registered is mapped, by table name, to the local table's
    LatestStreamArn. Call `prime()` before serving requests: iterators taken
    later would miss the first writes. Failures are handled as the deployed
    event source is configured to (infra/package.py): records outside the
    function's `stream_filters` are skipped, a batch that raises is split in
    two (BisectBatchOnFunctionError), reported item failures are re-delivered
    (ReportBatchItemFailures), and a record still failing after `max_retries`
    retries is dropped with an error log (MaximumRetryAttempts 5).
    """

    def __init__(self, app, config, source, dynamodb, streams, interval=0.2,
                 max_retries=5):
        super().__init__(f"stream-{source.name}", interval)
        self.handler = app.handler_map[source.name]
        self.new_context = context_factory(config, source.name)
        self.source = source
        self.streams = streams
        keep_raw_records(streams)
        table = dynamodb.describe_table(TableName=table_name_of(source.stream_arn))["Table"]
        if "LatestStreamArn" not in table:
            raise RuntimeError(f"table {table['TableName']} has no stream enabled")
        self.stream_arn = table["LatestStreamArn"]
        # Chalice ignores `stream_filters`; look it up in Chalice's order
        # (stage's lambda_functions section first), as infra/package.py does.
        self.filters = config.scope(config.chalice_stage, source.name)._chain_lookup(
            "stream_filters", varies_per_chalice_stage=True, varies_per_function=True) or []
        self.max_retries = max_retries
        self.iterators = {}  # shard id -> iterator; shards still being read
        self.seen_shards = set()
        self.delivered = {}  # shard id -> last sequence number handed to the handler
        self.check_shards_at = 0  # time.monotonic() of the next shard listing

    def _shards(self):
        return list_shards(self.streams, self.stream_arn)

    def _iterator(self, shard_id, position):
        return self.streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=shard_id,
            ShardIteratorType=position)["ShardIterator"]

    def prime(self):
        """Take iterators on the shards that exist now, at the configured position."""
        for shard in self._shards():
            self.seen_shards.add(shard["ShardId"])
            closed = "EndingSequenceNumber" in shard["SequenceNumberRange"]
            if self.source.starting_position == "LATEST" and closed:
                continue
            self.iterators[shard["ShardId"]] = self._iterator(
                shard["ShardId"], self.source.starting_position)

    def _discover_shards(self):
        # Shards opened after priming hold only new records: read them whole.
        for shard in self._shards():
            if shard["ShardId"] not in self.seen_shards:
                self.seen_shards.add(shard["ShardId"])
                self.iterators[shard["ShardId"]] = self._iterator(shard["ShardId"], "TRIM_HORIZON")

    def _read(self, shard_id):
        try:
            page = self.streams.get_records(ShardIterator=self.iterators[shard_id],
                                            Limit=self.source.batch_size)
        except ClientError as error:
            if error.response["Error"]["Code"] != "TrimmedDataAccessException":
                raise
            # DynamoDB Local quirk: an iterator taken on an empty shard is
            # "trimmed" once another table is written. Start again from the
            # horizon; records already delivered are skipped below.
            self.iterators[shard_id] = self._iterator(shard_id, "TRIM_HORIZON")
            return []
        last = int(self.delivered.get(shard_id, -1))
        records = [record for record in page["RawRecords"]
                   if int(record["dynamodb"]["SequenceNumber"]) > last]
        if page.get("NextShardIterator"):
            self.iterators[shard_id] = page["NextShardIterator"]
        else:
            del self.iterators[shard_id]  # closed and read to its end
            self.check_shards_at = 0  # its child shard is open: find it now
        return records

    def _deliver(self, records):
        """Invoke the handler until the batch succeeds. A reported failure
        re-delivers the batch from the earliest failed record on; an exception
        retries each half separately, so one bad record cannot sink the rest."""
        for attempt in range(1, self.max_retries + 2):
            try:
                failed = failed_sequence_numbers(
                    self.handler({"Records": records}, self.new_context()))
            except Exception:
                log.exception("stream handler %s failed on %d records (attempt %d)",
                              self.source.name, len(records), attempt)
                if len(records) > 1:
                    middle = len(records) // 2
                    self._deliver(records[:middle])
                    self._deliver(records[middle:])
                    return
                continue
            if not failed:
                return
            log.warning("stream handler %s reported %d failed records (attempt %d)",
                        self.source.name, len(failed), attempt)
            records = [record for record in records
                       if int(record["dynamodb"]["SequenceNumber"]) >= min(failed)]
        log.error("stream handler %s: dropped %d records after %d attempts",
                  self.source.name, len(records), self.max_retries + 1)

    def step(self):
        try:
            if time.monotonic() >= self.check_shards_at:
                self.check_shards_at = time.monotonic() + SHARD_CHECK_SECONDS
                self._discover_shards()
            for shard_id in list(self.iterators):
                records = [lambda_record(record, self.source.stream_arn)
                           for record in self._read(shard_id)]
                wanted = [record for record in records if matches_any(self.filters, record)]
                if wanted:
                    self._deliver(wanted)
                if records:
                    self.delivered[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]
        except Exception:
            log.exception("stream poller %s failed; retrying", self.source.name)


class PoolStreams(_Worker):
    """Feeds the stream handlers from each pool's messages table too, as the
    event source mappings an operator adds for a pool do on AWS: looks for
    new pools every `interval` seconds and starts their pollers, which read
    a new pool's stream from its start."""

    def __init__(self, app, config, client_at, interval=2):
        super().__init__("pool-streams", interval)
        self.app, self.config, self.client_at = app, config, client_at
        self.pollers = {}  # pool URI -> its pollers

    def step(self):
        from chalicelib.storage import places, pools
        try:
            for pool in pools.every():
                if pool.uri not in self.pollers:
                    self.pollers[pool.uri] = self._start(places.parse(pool.uri))
        except Exception:
            log.exception("pool streams: looking for pools failed; retrying")

    def _start(self, place):
        table = place.table("messages_table")
        started = []
        for source in self.app.event_sources:
            if not isinstance(source, DynamoDBEventConfig):
                continue
            pooled = copy.copy(source)
            pooled.stream_arn = (f"arn:aws:dynamodb:{place.region}:{ACCOUNT_ID}:"
                                 f"table/{table}/stream/latest")
            pooled.starting_position = "TRIM_HORIZON"
            poller = StreamPoller(self.app, self.config, pooled,
                                  self.client_at("dynamodb", place),
                                  self.client_at("dynamodbstreams", place))
            poller.prime()
            poller.start()
            started.append(poller)
        log.info("polling pool table %s (%s)", table, place.uri)
        return started

    def stop(self):
        super().stop()
        for pollers in self.pollers.values():
            stop_triggers(pollers)


def start_triggers(app, config, dynamodb, streams, schedule_interval, region):
    """Start a worker per schedule and per DynamoDB stream handler; return them.

    Stream pollers are primed before this returns, so start serving after it.
    """
    workers = []
    for source in app.event_sources:
        if isinstance(source, ScheduledEventConfig):
            workers.append(ScheduleRunner(app, config, source, schedule_interval, region))
        elif isinstance(source, DynamoDBEventConfig):
            poller = StreamPoller(app, config, source, dynamodb, streams)
            poller.prime()
            workers.append(poller)
        else:
            log.warning("event source %s (%s) is not emulated locally",
                        source.name, type(source).__name__)
    for worker in workers:
        worker.start()
        log.info("started %s every %ss", worker.name, worker.interval)
    return workers


def stop_triggers(workers):
    for worker in workers:
        worker.stop()

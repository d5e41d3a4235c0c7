"""Shared helpers for the bench scripts: start DynamoDB Local, count the
DynamoDB work the app does, size items, print tables.

Order: `start_dynamodb()` sets the stage's environment (endpoint, table
names), which settings are built from; then `create_tables()` points storage
at those tables and creates them, and `install_meter()` hooks their clients.

Counting hooks botocore's event system on the clients pynamodb creates:

* before-parameter-build.dynamodb.*: ask for ReturnConsumedCapacity=INDEXES
  (pynamodb asks for TOTAL), on the operations whose input takes it;
* after-call.dynamodb.*: one request per call, by operation, and the units
  from ConsumedCapacity (a dict, or a list for BatchWriteItem, BatchGetItem
  and the transactions).

A failed conditional write returns no figure, but AWS bills it: it is counted
as 1 WRU here (design brief). DynamoDB Local reports only CapacityUnits (no
read/write split), so the operation decides whether they are read or write
units; on AWS the split fields are used when present.
"""
import contextvars
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from local import dynamodb_local  # noqa: E402  (does not import chalicelib)
from local.runner import REGION, configure_environment  # noqa: E402  (nor does this)
from local.triggers import list_shards  # noqa: E402

STAGE = "dev"
READ_OPERATIONS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}
WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem",
                    "TransactWriteItems"}
# Short names for the per-call request breakdown.
SHORT = {"GetItem": "Get", "BatchGetItem": "BatchGet", "Query": "Query",
         "Scan": "Scan", "PutItem": "Put", "UpdateItem": "Update",
         "DeleteItem": "Delete", "BatchWriteItem": "BatchWrite",
         "TransactWriteItems": "TransactWrite", "TransactGetItems": "TransactGet"}


# -- DynamoDB Local and the environment ------------------------------------

def set_environment(endpoint):
    """The dev stage's environment, pointed at `endpoint`, with dummy
    credentials (real ones must never be picked up by a bench run)."""
    configure_environment(STAGE, endpoint)


def start_dynamodb():
    """DynamoDB Local in memory on a free port, the environment set for it.
    Returns the handle (call .stop())."""
    if not dynamodb_local.java_available():
        sys.exit("Java 17 is needed: the bench measures on DynamoDB Local, "
                 "moto's capacity figures are constants")
    if "chalicelib.storage.models" in sys.modules:
        raise RuntimeError("start_dynamodb() must run before chalicelib is imported")
    db = dynamodb_local.start()
    set_environment(db.endpoint)
    return db


def create_tables():
    from local.tables import create_tables as create
    create()


def boto_client(service, endpoint):
    import boto3
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION)


# -- counting --------------------------------------------------------------

@dataclass
class Usage:
    """DynamoDB work: requests by operation and units consumed."""
    requests: Counter = field(default_factory=Counter)
    rru: float = 0.0          # base-table read units
    wru: float = 0.0          # base-table write units (incl. failed conditions)
    index_rru: float = 0.0
    index_wru: float = 0.0
    failed_conditions: int = 0   # counted as 1 WRU each (no figure returned)
    empty_reads: int = 0         # reads that reported 0 units (empty Query)
    errors: Counter = field(default_factory=Counter)

    @property
    def total_requests(self):
        return sum(self.requests.values())

    def copy(self):
        return Usage(Counter(self.requests), self.rru, self.wru, self.index_rru,
                     self.index_wru, self.failed_conditions, self.empty_reads,
                     Counter(self.errors))

    def __sub__(self, other):
        return Usage(self.requests - other.requests, self.rru - other.rru,
                     self.wru - other.wru, self.index_rru - other.index_rru,
                     self.index_wru - other.index_wru,
                     self.failed_conditions - other.failed_conditions,
                     self.empty_reads - other.empty_reads, self.errors - other.errors)

    def __add__(self, other):
        return Usage(self.requests + other.requests, self.rru + other.rru,
                     self.wru + other.wru, self.index_rru + other.index_rru,
                     self.index_wru + other.index_wru,
                     self.failed_conditions + other.failed_conditions,
                     self.empty_reads + other.empty_reads, self.errors + other.errors)

    def scaled(self, factor):
        """This usage times `factor` (for averages); request counts become floats."""
        return Usage(Counter({op: n * factor for op, n in self.requests.items()}),
                     self.rru * factor, self.wru * factor, self.index_rru * factor,
                     self.index_wru * factor, self.failed_conditions * factor,
                     self.empty_reads * factor,
                     Counter({code: n * factor for code, n in self.errors.items()}))

    def breakdown(self):
        """'Get 2, Query 2, Update 10' in a fixed order."""
        order = ["GetItem", "BatchGetItem", "Query", "Scan", "PutItem", "UpdateItem",
                 "DeleteItem", "BatchWriteItem", "TransactWriteItems", "TransactGetItems"]
        parts = []
        for op in order + sorted(set(self.requests) - set(order)):
            count = self.requests.get(op, 0)
            if count:
                parts.append(f"{SHORT.get(op, op)} {_number(count)}")
        return ", ".join(parts) or "-"


def _number(value):
    return f"{value:.3g}" if isinstance(value, float) and value != int(value) else f"{int(value)}"


class Meter:
    """Thread-safe running totals of DynamoDB work."""

    def __init__(self):
        self._lock = threading.Lock()
        self._usage = Usage()
        # The caller's own tally, in a context variable: storage.parallel runs
        # a request's DynamoDB calls in pool threads, in copies of its context.
        self._tally = contextvars.ContextVar("bench_tally")
        self.clients = []  # every client hooked, to report which models share

    def snapshot(self):
        with self._lock:
            return self._usage.copy()

    def measure(self):
        """Context manager: `with meter.measure() as m: ...; m.usage`."""
        return _Measurement(self)

    # botocore handlers --------------------------------------------------

    def before_parameter_build(self, params, model, context, **_):
        shape = model.input_shape
        if shape is not None and "ReturnConsumedCapacity" in shape.members:
            params["ReturnConsumedCapacity"] = "INDEXES"
        if model.name == "TransactWriteItems":
            # A cancelled transaction is billed but returns no figure: keep
            # the item count to bill it ourselves.
            context["bench_items"] = len(params.get("TransactItems", []))

    def after_call(self, http_response, parsed, model, context, **_):
        operation = model.name
        capacity = parsed.get("ConsumedCapacity")
        error = parsed.get("Error", {}).get("Code")
        usage = Usage()
        usage.requests[operation] += 1
        if capacity is None:
            if error == "ConditionalCheckFailedException" and operation in WRITE_OPERATIONS:
                usage.wru += 1
                usage.failed_conditions += 1
            elif error == "TransactionCanceledException":
                usage.wru += 2 * context.get("bench_items", 1)
                usage.errors[error] += 1
            elif error:
                usage.errors[error] += 1
        else:
            for entry in capacity if isinstance(capacity, list) else [capacity]:
                self._add(usage, operation, entry)
        tally = self._own_tally()
        with self._lock:
            self._usage = self._usage + usage
            # The caller's own tally (botocore calls handlers in its thread or
            # in a pool thread running in its context), so concurrent callers
            # can each measure their own calls.
            tally[0] = tally[0] + usage

    def _own_tally(self):
        tally = self._tally.get(None)
        if tally is None:
            tally = [Usage()]
            self._tally.set(tally)
        return tally

    def thread_snapshot(self):
        """This thread's running totals (with its requests' pool work)."""
        tally = self._own_tally()
        with self._lock:
            return tally[0].copy()

    @staticmethod
    def _add(usage, operation, entry):
        is_read = operation in READ_OPERATIONS

        def split(units):
            """(read, write) units of one table or index figure."""
            if "ReadCapacityUnits" in units or "WriteCapacityUnits" in units:
                return units.get("ReadCapacityUnits", 0.0), units.get("WriteCapacityUnits", 0.0)
            total = units.get("CapacityUnits", 0.0)
            return (total, 0.0) if is_read else (0.0, total)

        base = entry.get("Table", entry)  # TOTAL mode has no "Table" part
        read, write = split(base)
        usage.rru += read
        usage.wru += write
        if is_read and entry.get("CapacityUnits", 0.0) == 0:
            usage.empty_reads += 1
        for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            for units in entry.get(kind, {}).values():
                read, write = split(units)
                usage.index_rru += read
                usage.index_wru += write


class _Measurement:
    def __init__(self, meter):
        self.meter = meter
        self.usage = None

    def __enter__(self):
        self._start = self.meter.snapshot()
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc_info):
        self.seconds = time.perf_counter() - self._started
        self.usage = self.meter.snapshot() - self._start


METER = Meter()


def hook_client(client):
    """Register the meter's handlers on one botocore DynamoDB client, once."""
    if getattr(client, "_bench_metered", False):
        return client
    client.meta.events.register("before-parameter-build.dynamodb.*",
                                METER.before_parameter_build)
    client.meta.events.register("after-call.dynamodb.*", METER.after_call)
    client._bench_metered = True
    METER.clients.append(client)
    return client


def install_meter():
    """Meter every pynamodb client: the models' cached ones and any made later
    (TransactWrite builds its own Connection; pynamodb may also rebuild a
    client whose credentials went missing). Returns the meter.

    pynamodb caches one TableConnection per model class, so models that share
    a table (MessageRecord, QueueState, ClaimRecord, ...) still have distinct
    clients: each one is hooked.
    """
    from pynamodb.connection.base import Connection
    original = Connection.client
    if not getattr(original, "_bench_metered", False):
        def metered_client(self):
            return hook_client(original.fget(self))
        prop = property(metered_client)
        prop.fget._bench_metered = True
        Connection.client = prop
    for model in all_models():
        model._get_connection().connection.client  # noqa: B018 (creates and hooks it)
    return METER


def all_models():
    from chalicelib.storage import models
    return models.service_models()


def client_sharing():
    """{client index: [model names]}: which models share a botocore client."""
    groups = {}
    for model in all_models():
        client = model._get_connection().connection.client
        groups.setdefault(id(client), []).append(model.__name__)
    return list(groups.values())


# -- item size -------------------------------------------------------------

def _number_size(text):
    """Bytes DynamoDB counts for a number: about one per two significant
    digits, plus one (AWS's documented rule of thumb)."""
    digits = text.lstrip("-").replace(".", "").lstrip("0").rstrip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def attribute_value_size(value):
    (kind, inner), = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + attribute_value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + attribute_value_size(v) for k, v in inner.items())
    if kind in ("SS", "NS", "BS"):
        return sum(attribute_value_size({kind[0]: v}) for v in inner)
    raise ValueError(kind)


def item_size(item):
    """Size DynamoDB bills for an item in its low-level form
    ({"name": {"S": "..."}}): names plus values."""
    return sum(len(name.encode()) + attribute_value_size(value)
               for name, value in item.items())


# -- statistics and printing ------------------------------------------------

def percentile(values, p):
    """The p-th percentile (0-100), nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def median(values):
    return statistics.median(values) if values else None


def print_table(headers, rows, title=None):
    if title:
        print(title)
    texts = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(str(h)), *(len(row[i]) for row in texts)) if texts else len(str(h))
              for i, h in enumerate(headers)]
    print("  ".join(str(h).ljust(w) if i == 0 else str(h).rjust(w)
                    for i, (h, w) in enumerate(zip(headers, widths))))
    print("  ".join("-" * w for w in widths))
    for row in texts:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(row, widths))))
    print()


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == int(value) and abs(value) < 1e6:
            return f"{int(value)}"
        return f"{value:.2f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


# -- DynamoDB streams --------------------------------------------------------

class StreamReader:
    """Reads a table's stream on DynamoDB Local from its beginning, in order
    per shard, handing out each record once."""

    def __init__(self, dynamodb, streams, table_name):
        self.streams = streams
        table = dynamodb.describe_table(TableName=table_name)["Table"]
        self.stream_arn = table["LatestStreamArn"]
        self.iterators = {}
        self.delivered = {}  # shard id -> last sequence number handed out

    def _iterator(self, shard_id, after=None):
        kwargs = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
                  if after else {"ShardIteratorType": "TRIM_HORIZON"})
        return self.streams.get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard_id,
                                               **kwargs)["ShardIterator"]

    def _shards(self):
        return list_shards(self.streams, self.stream_arn)

    def read_new(self, limit=1000):
        """Every record written since the last call (shards in creation order)."""
        from botocore.exceptions import ClientError
        records = []
        for shard in self._shards():
            shard_id = shard["ShardId"]
            if shard_id not in self.iterators:
                self.iterators[shard_id] = self._iterator(shard_id, self.delivered.get(shard_id))
            while self.iterators.get(shard_id):
                try:
                    page = self.streams.get_records(ShardIterator=self.iterators[shard_id],
                                                    Limit=limit)
                except ClientError as error:
                    if error.response["Error"]["Code"] not in (
                            "TrimmedDataAccessException", "ExpiredIteratorException"):
                        raise
                    # DynamoDB Local quirk (stack notes): start again after the
                    # last record handed out.
                    self.iterators[shard_id] = self._iterator(
                        shard_id, self.delivered.get(shard_id))
                    continue
                last = int(self.delivered.get(shard_id, -1))
                fresh = [r for r in page["Records"]
                         if int(r["dynamodb"]["SequenceNumber"]) > last]
                records += fresh
                if fresh:
                    self.delivered[shard_id] = fresh[-1]["dynamodb"]["SequenceNumber"]
                self.iterators[shard_id] = page.get("NextShardIterator")
                if not page["Records"]:
                    break  # caught up on an open shard (or the shard closed)
        return records


# -- the local runner ------------------------------------------------------

def cpu_seconds(pid):
    """CPU time (user + system) a process has used so far, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid):
    """Direct children of a process, from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def code_version():
    """Which code was measured: HEAD, and the app files with uncommitted
    changes (others edit the tree while benches run)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True,
                              text=True).stdout.rstrip("\n")
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "chalicelib",
                                      "app.py", "local").splitlines()]
    return (f"code: HEAD {git('rev-parse', '--short', 'HEAD')}"
            + (f", uncommitted changes in {', '.join(dirty)}" if dirty else ", clean"))


def machine_load():
    """One line on how busy the machine is: wall times and throughput are
    only comparable between runs on an equally quiet machine."""
    one, five, fifteen = os.getloadavg()
    return (f"machine: {os.cpu_count()} cores, load average {one:.1f} / {five:.1f} / "
            f"{fifteen:.1f} (1 / 5 / 15 min)")


def dumps(value):
    return json.dumps(value, separators=(",", ":"))

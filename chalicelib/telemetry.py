"""What the service tells its operators: one structured line per request or
websocket frame, and counters as CloudWatch embedded metrics (EMF).

Both are JSON lines on stdout, which Lambda sends to CloudWatch Logs; EMF
lines become metrics there with no API call. An invocation (a request, a
frame, a stream batch, a schedule run) is opened with `invocation()`; code
anywhere below it adds to its counters with `count()` (from the storage
pool's threads too: they run in a copy of the caller's context), and
`finish()` writes the request's line, then one EMF line for the counters
that moved, if any.

Field names follow AWS Lambda Powertools' (level, message, timestamp,
service, xray_trace_id, function_request_id), so queries written for it
work; Powertools itself is not used: docs/architecture.md says why.
"""
import contextvars
import json
import logging
import os
import sys
import threading
import time
import uuid

SERVICE = "zaqar"
NAMESPACE = "Zaqar"
# The metrics, each counted where it happens.
MESSAGES_POSTED = "MessagesPosted"
MESSAGES_CLAIMED = "MessagesClaimed"
MESSAGES_DELETED = "MessagesDeleted"
CLAIM_RACES_LOST = "ClaimRacesLost"
MESSAGES_DEAD_LETTERED = "MessagesDeadLettered"
DELIVERIES_FAILED = "DeliveriesFailed"
STREAM_BATCH_FAILURES = "StreamBatchFailures"
METRICS = (MESSAGES_POSTED, MESSAGES_CLAIMED, MESSAGES_DELETED, CLAIM_RACES_LOST,
           MESSAGES_DEAD_LETTERED, DELIVERIES_FAILED, STREAM_BATCH_FAILURES)

requests_log = logging.getLogger("zaqar.request")
metrics_log = logging.getLogger("zaqar.metrics")
_current = contextvars.ContextVar("zaqar_invocation", default=None)


class Invocation:
    """One invocation's facts for its log line, and its counters."""

    def __init__(self, kind, request_id, fields):
        self.kind = kind
        self.request_id = request_id
        self.fields = dict(fields)
        self.started = time.perf_counter()
        self.counts = {}
        self._lock = threading.Lock()  # counted from several threads at once

    def add(self, name, amount):
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + amount


def trace_id():
    """The X-Ray trace's root id of this invocation (Lambda sets the variable
    anew for each one), or None when not traced."""
    header = os.environ.get("_X_AMZN_TRACE_ID", "")
    for part in header.split(";"):
        key, _, value = part.partition("=")
        if key == "Root" and value:
            return value
    return None


def request_id_for(gateway_request_id):
    """The x-openstack-request-id of a request: API Gateway's own id in
    Zaqar's `req-` form, so a client's id finds the gateway's access log
    line too; a fresh one where no gateway gave any (the test client)."""
    return f"req-{gateway_request_id or uuid.uuid4()}"


def invocation(kind, request_id=None, **fields):
    """Open an invocation in the current context and return it."""
    opened = Invocation(kind, request_id, fields)
    _current.set(opened)
    return opened


def count(name, amount=1):
    """Add to a counter of the invocation under way (none: nothing counted,
    e.g. code run by a test outside any handler)."""
    opened = _current.get()
    if opened is not None and amount:
        opened.add(name, amount)


def note(**fields):
    """Add facts to the line of the invocation under way."""
    opened = _current.get()
    if opened is not None:
        opened.fields.update(fields)


def finish(opened, stage="", function_request_id=None, **fields):
    """Write the invocation's line (requests and frames), then its metrics."""
    fields = {**opened.fields, **fields}
    trace = trace_id()
    if opened.kind in ("request", "frame"):
        line = {"level": "INFO", "service": SERVICE, "kind": opened.kind,
                "message": _summary(opened.kind, fields), "request_id": opened.request_id,
                **fields,
                "latency_ms": round((time.perf_counter() - opened.started) * 1000, 1),
                "function_request_id": function_request_id, "xray_trace_id": trace}
        requests_log.info(line["message"], extra={"document": line})
    if opened.counts:
        emit_metrics(opened.counts, stage, request_id=opened.request_id,
                     function_request_id=function_request_id, xray_trace_id=trace,
                     **{key: fields[key] for key in ("function",) if key in fields})
    if _current.get() is opened:
        _current.set(None)


def _summary(kind, fields):
    if kind == "request":
        return f"{fields.get('method')} {fields.get('path')} {fields.get('status')}"
    return f"{fields.get('frame_action')} {fields.get('status')}"


def emf_document(counts, stage, timestamp_ms=None, **properties):
    """The EMF line for `counts`: each a Count metric of namespace Zaqar,
    with the stage as the one dimension (a queue or project would make a
    metric per value, each billed); `properties` ride along for search."""
    names = [name for name in METRICS if counts.get(name)]
    document = {"_aws": {
        "Timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
        "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [["Stage"]],
                               "Metrics": [{"Name": name, "Unit": "Count"}
                                           for name in names]}]},
        "Stage": stage or "default", "service": SERVICE}
    document.update({key: value for key, value in properties.items() if value is not None})
    document.update({name: counts[name] for name in names})
    return document


def emit_metrics(counts, stage, **properties):
    document = emf_document(counts, stage, **properties)
    metrics_log.info("metrics", extra={"document": document})


# -- output -----------------------------------------------------------------

class JsonFormatter(logging.Formatter):
    """A record's document as one JSON line; any other record as one too."""

    def format(self, record):
        document = getattr(record, "document", None)
        if document is None:
            document = {"level": record.levelname, "logger": record.name,
                        "message": record.getMessage()}
            if record.exc_info:
                document["exception"] = self.formatException(record.exc_info)
        else:
            document = dict(document)
        document.setdefault("timestamp", self.formatTime(record))
        return json.dumps(document, default=str)

    def formatTime(self, record, datefmt=None):
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"


class StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is when a record comes (Lambda's, a
    test's capture), not to the one there was at import."""

    def __init__(self):
        super().__init__(sys.stdout)

    def emit(self, record):
        self.stream = sys.stdout
        super().emit(record)


def _install():
    """Both loggers write JSON to stdout, and only there: Lambda's own root
    handler would print them again in plain text. The local runner swaps
    the formatter (local/runner.py --log-format)."""
    handler = StdoutHandler()
    handler.setFormatter(JsonFormatter())
    for logger in (requests_log, metrics_log):
        if not logger.handlers:
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


_install()

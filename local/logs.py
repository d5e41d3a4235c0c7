"""How the local runner prints its log: text for a person (the default), or
the JSON lines a deployed function writes (`--log-format json`), one per
request as on Lambda (chalicelib/telemetry.py writes them in both cases)."""
import logging

from chalicelib import telemetry

FORMATS = ("text", "json")
TEXT = "%(asctime)s %(name)s %(message)s"


class TextFormatter(logging.Formatter):
    """A request's or frame's line with its latency, action, project, queue
    and request id after the message; a metrics line with its counts."""

    def __init__(self):
        super().__init__(TEXT)

    def format(self, record):
        text = super().format(record)
        document = getattr(record, "document", None)
        if document is None:
            return text
        if "_aws" in document:
            return " ".join([text, *(f"{name}={document[name]}" for name in telemetry.METRICS
                                     if name in document)])
        parts = [f"{document['latency_ms']} ms" if "latency_ms" in document else None,
                 document.get("action"),
                 *(f"{key}={document[key]}" for key in ("project", "queue")
                   if document.get(key) is not None),
                 document.get("request_id")]
        return " ".join([text, *filter(None, parts)])


def configure(log_format):
    """Everything logged (the runner's lines, the app's own) in one format."""
    formatter = telemetry.JsonFormatter() if log_format == "json" else TextFormatter()
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    for logger in (telemetry.requests_log, telemetry.metrics_log):
        for own in logger.handlers:
            own.setFormatter(formatter)

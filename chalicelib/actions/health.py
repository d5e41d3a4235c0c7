"""Ping and the admin health report."""
import dataclasses
import time
import uuid


from chalicelib.actions import queues
from chalicelib.errors import ServiceUnavailable
from chalicelib.storage import queues as queue_store
from chalicelib.storage.retry import STORAGE_FAILURES


def storage_reachable():
    try:
        queue_store.get_metadata("-", "ping")
    except STORAGE_FAILURES + (ServiceUnavailable,):
        return False
    return True


def _timed(operation):
    started = time.monotonic()
    try:
        operation()
    except Exception:  # the report says which step failed and how long it took
        return {"succeeded": False, "seconds": time.monotonic() - started,
                "ref": str(uuid.uuid4())}
    return {"succeeded": True, "seconds": time.monotonic() - started, "ref": None}


def health(ctx):
    """Storage reachability, and the outcome of real operations on a
    throw-away queue, as Zaqar's admin health reports them. The queue lives in
    a throw-away project, as in Zaqar, so no real project ever lists it."""
    probe = dataclasses.replace(ctx, project=f"health-{uuid.uuid4().hex}")
    name = f"health-{uuid.uuid4().hex[:12]}"
    status = {
        "create_queue": _timed(lambda: queues.create(probe, name, {})),
        "delete_queue": _timed(lambda: queues.delete(probe, name)),
    }
    return {"storage_reachable": storage_reachable(), "operation_status": status}

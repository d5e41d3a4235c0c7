"""Ping and the admin health report."""
from __future__ import annotations

import dataclasses
import time
import uuid
from typing import TYPE_CHECKING

from chalicelib.actions import claims, messages, queues, storage
from chalicelib.errors import NotFound, ServiceUnavailable
from chalicelib.storage.errors import is_backend_failure

if TYPE_CHECKING:
    from chalicelib.storage.base import Pool
    from chalicelib.validation import Context


def storage_reachable(ctx: Context) -> bool:
    try:
        storage(ctx).queues.get_metadata("-", "ping")
    except ServiceUnavailable:
        return False
    except Exception as error:
        if not is_backend_failure(error):
            raise
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


def health(ctx: Context) -> dict:
    """Storage reachability, and the outcome of real operations on a
    throw-away queue, as Zaqar's admin health reports them (in admin mode
    only; policy lets only admins call it): create a queue,
    post 100 messages, claim, list, delete the claimed ones, release the
    claim, bulk-delete the rest, delete the queue. The queue lives in a
    throw-away project, as in Zaqar, so no real project ever lists it."""
    if not ctx.settings.admin_mode:
        raise NotFound(title="404 Not Found")
    if not ctx.settings.pooling:
        return {"storage_reachable": storage_reachable(ctx),
                "operation_status": _operations(ctx)}
    # As Zaqar with pooling: the catalogue (the stage's tables), then each pool.
    report = {"catalog_reachable": storage_reachable(ctx)}
    for pool in storage(ctx).pools.every():
        report[pool.name] = {"storage_reachable": storage(ctx).pools.reachable(pool.uri),
                             "operation_status": _operations(ctx, pool)}
    return report


def _operations(ctx: Context, pool: Pool | None = None) -> dict:
    """Each operation's outcome on a throw-away queue (placed on `pool`)."""
    probe = dataclasses.replace(ctx, project=f"health-{uuid.uuid4().hex}")
    name = f"health-{uuid.uuid4().hex[:12]}"
    found = {}

    def post():
        found["ids"] = messages.post(probe, name, {"messages": [
            {"body": {"n": n}, "ttl": 60} for n in range(100)]})

    def claim():
        found["claim_id"], found["claimed"] = claims.create(probe, name, {"ttl": 60})

    def delete_claimed():
        for message in found["claimed"]:
            messages.delete(probe, name, message.id, found["claim_id"])

    status = {
        "create_queue": _timed(lambda: storage(probe).queues.create(
            probe.project, name, {}, pool)),
        "post_messages": _timed(post),
        "claim_messages": _timed(claim),
        "list_messages": _timed(lambda: messages.list_messages(probe, name, echo=True)),
        "delete_messages": _timed(delete_claimed),
        "delete_claim": _timed(lambda: claims.delete(probe, name, found["claim_id"])),
        "bulk_delete_messages": _timed(
            lambda: messages.delete_many(probe, name, found["ids"][-20:])),
        "delete_queue": _timed(lambda: queues.delete(probe, name)),
    }
    return status

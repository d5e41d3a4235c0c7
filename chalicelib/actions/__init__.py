"""Zaqar's actions, each implemented once: they check their input (schemas,
limits, names) and call storage. The REST and websocket transports both call
them and only shape the answers."""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from chalicelib.validation import check_queue_name

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from chalicelib.storage.base import Driver
    from chalicelib.validation import Context

    Action = TypeVar("Action", bound=Callable)


def storage(ctx: Context) -> Driver:
    """The stores the caller's settings name: the actions' one way to storage."""
    # Imported on first use: the stores' pynamodb and botocore cost ~150 ms of
    # every function's cold start (bench/coldstart.py), needed or not.
    from chalicelib.storage.dynamodb import driver
    return driver(ctx.settings)


def on_its_pool(action: Action) -> Action:
    """`action(ctx, queue_name, ...)`, with storage at the pool its queue's
    messages are on (a pooling stage's queue created with a flavor, see
    storage/places.py). The pool comes with the queue's facts, which a warm
    function keeps: no request more on the message hot path."""
    @functools.wraps(action)
    def placed(ctx, queue_name, *args, **kwargs):
        if not ctx.settings.pooling:
            return action(ctx, queue_name, *args, **kwargs)
        check_queue_name(queue_name)
        driver = storage(ctx)
        facts = driver.queues.facts(ctx.project, queue_name)
        with driver.pools.at(facts.location if facts else None):
            return action(ctx, queue_name, *args, **kwargs)
    return placed

"""Zaqar's actions, each implemented once: they check their input (schemas,
limits, names) and call storage. The REST and websocket transports both call
them and only shape the answers."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.storage.base import Driver
    from chalicelib.validation import Context


def storage(ctx: Context) -> Driver:
    """The stores the caller's settings name: the actions' one way to storage."""
    # Imported on first use: the stores' pynamodb and botocore cost ~150 ms of
    # every function's cold start (bench/coldstart.py), needed or not.
    from chalicelib.storage.dynamodb import driver
    return driver(ctx.settings)

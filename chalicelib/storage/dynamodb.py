"""The DynamoDB driver, built from settings in this one place.

Its stores are the modules of this package: each matches its interface in
storage/base.py as a module (tests/test_storage_contract.py checks the
signatures), so no class forwards calls to them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.storage import (
    claims,
    configure,
    connections,
    keys,
    listing,
    messages,
    queues,
    stats,
    subscriptions,
)
from chalicelib.storage.base import Driver

if TYPE_CHECKING:
    from chalicelib.config import Settings

# The modules share one set of model classes, so there is one driver, built
# once; what the settings change is where those models point. A pool (queues
# on other tables, another endpoint or another region) would build a Driver
# per place, cached by it, from model classes of its own bound to that place.
_DRIVER = Driver(queues=queues, messages=messages, listing=listing, claims=claims,
                 stats=stats, subscriptions=subscriptions, connections=connections,
                 keys=keys)


def driver(settings: Settings) -> Driver:
    """The driver for the tables, region and endpoint `settings` name."""
    # A comparison while the settings stay where they were: a warm Lambda
    # keeps its driver and its connections.
    configure(settings)
    return _DRIVER

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
    flavors,
    keys,
    listing,
    messages,
    pools,
    queues,
    stats,
    subscriptions,
)
from chalicelib.storage.base import Driver

if TYPE_CHECKING:
    from chalicelib.config import Settings

# The modules share one set of model classes, so there is one driver, built
# once; what the settings change is where those models point, and a pool's
# queues are served by the same driver inside `pools.at(uri)`
# (storage/places.py).
_DRIVER = Driver(queues=queues, messages=messages, listing=listing, claims=claims,
                 stats=stats, subscriptions=subscriptions, connections=connections,
                 keys=keys, pools=pools, flavors=flavors)


def driver(settings: Settings) -> Driver:
    """The driver for the tables, region and endpoint `settings` name."""
    # A comparison while the settings stay where they were: a warm Lambda
    # keeps its driver and its connections.
    configure(settings)
    return _DRIVER

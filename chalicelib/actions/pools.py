"""Pools and flavors (contract §3.6-3.7): administrators register DynamoDB
places for messages (pools, storage/places.py) and group them (flavors); a
queue created with `_flavor` is placed on one of its flavor's pools by
weight. The routes exist on stages with both admin_mode and pooling."""
from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING

from chalicelib.actions import storage
from chalicelib.errors import BadRequest, Conflict, Forbidden, NotFound
from chalicelib.storage.base import Flavor, Pool
from chalicelib.validation import check_limit, validate

if TYPE_CHECKING:
    from chalicelib.validation import Context

POOL_FIELDS = ("uri", "weight", "flavor", "options")
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# What a pool's DynamoDB table gives a flavor's queues (Zaqar's names).
CAPABILITIES = ["FIFO", "CLAIMS", "DURABILITY", "AOD", "HIGH_THROUGHPUT"]


def check_enabled(ctx: Context) -> None:
    if not (ctx.settings.admin_mode and ctx.settings.pooling):
        raise NotFound(title="404 Not Found")  # as Zaqar, which has no such route then


def _places(ctx, kind=None, name=None):
    """The pools' store, once the stage has them and `name` is a name."""
    check_enabled(ctx)
    if kind is not None and not (isinstance(name, str) and NAME.match(name)):
        raise BadRequest(f"The {kind} name may have at most 64 letters, digits, "
                         "underscores or hyphens.")
    return storage(ctx).pools


def _check_uri(ctx, uri):
    problem = storage(ctx).pools.uri_problem(uri)
    if problem is not None:
        raise BadRequest(f"The uri is not a pool's: {problem} "
                         "(dynamodb://<region>/<prefix>[?endpoint=<url>]).")
    if not storage(ctx).pools.reachable(uri):
        raise BadRequest(f"cannot connect to {uri}")


def _check_flavor(ctx, name):
    if name is not None and storage(ctx).flavors.get(name) is None:
        raise BadRequest(f"Flavor {name} does not exist.")


def shown_pool(pool: Pool, detailed: bool = True) -> dict:
    shown = {"name": pool.name, "uri": pool.uri, "weight": pool.weight,
             "flavor": pool.flavor, "href": f"/v2/pools/{pool.name}"}
    if detailed:
        shown["options"] = pool.options
    return shown


def create_pool(ctx: Context, name: str, document: object) -> None:
    pools = _places(ctx, "pool", name)
    validate("pool", document, ctx.settings)
    missing = [field for field in ("weight", "uri") if field not in document]
    if missing:
        raise BadRequest(f"'{missing[0]}' is a required property",
                         title="Invalid request body")
    _check_uri(ctx, document["uri"])
    _check_flavor(ctx, document.get("flavor"))
    if not pools.create(Pool(name, document["uri"], document["weight"],
                             document.get("flavor"), document.get("options") or {})):
        raise Conflict(f"Pool {name} already exists.")


def get_pool(ctx: Context, name: str) -> Pool:
    pool = _places(ctx, "pool", name).get(name)
    if pool is None:
        raise NotFound(f"Pool {name} does not exist.")
    return pool


def _page_size(limit):
    """A list's page size: 10 unless asked, at most 20 (as Zaqar)."""
    limit = 10 if limit is None else limit
    check_limit(limit, 20, "may not be greater than")
    return limit


def list_pools(ctx: Context, marker: str | None, limit: int | None) -> list[Pool]:
    return _places(ctx).list_page(marker, _page_size(limit))


def update_pool(ctx: Context, name: str, document: object) -> Pool:
    pools = _places(ctx, "pool", name)
    validate("pool", document, ctx.settings)
    if not any(field in document for field in POOL_FIELDS):
        raise BadRequest("One of `uri`, `weight`, `flavor`, or `options` needs to be "
                         "specified.")
    get_pool(ctx, name)
    if "uri" in document:
        _check_uri(ctx, document["uri"])
    if "flavor" in document:
        _check_flavor(ctx, document["flavor"])
        pools.tag(name, document["flavor"])
    updated = pools.update(name, uri=document.get("uri"), weight=document.get("weight"),
                           options=document.get("options"))
    if updated is None:
        raise NotFound(f"Pool {name} does not exist.")
    return updated


def delete_pool(ctx: Context, name: str) -> None:
    pools = _places(ctx, "pool", name)
    while True:  # again if the pool's flavor changed between the read and the delete
        pool = pools.get(name)
        if pool is None:
            return  # Zaqar answers 204 for a missing pool too
        if pool.flavor is not None and storage(ctx).flavors.get(pool.flavor) is not None:
            raise Forbidden(f"Pool {name} is used by flavor {pool.flavor}: it cannot be "
                            "deleted.", title="Unable to delete")
        if pools.delete(name, pool.flavor):
            return


def shown_flavors(ctx: Context, flavors: list[Flavor], detailed: bool = True) -> list[dict]:
    """The flavors as Zaqar shows them, their pools read once for all."""
    every = storage(ctx).pools.every()
    shown = [{"name": flavor.name, "href": f"/v2/flavors/{flavor.name}",
              "pool_list": [pool.name for pool in every if pool.flavor == flavor.name]}
             for flavor in flavors]
    if detailed:
        for entry in shown:
            entry["capabilities"] = CAPABILITIES
    return shown


def shown_flavor(ctx: Context, flavor: Flavor, detailed: bool = True) -> dict:
    return shown_flavors(ctx, [flavor], detailed)[0]


def _regroup(ctx, name, pool_list):
    """Tag the listed pools with the flavor, and untag its others."""
    pools = storage(ctx).pools
    every = pools.every()
    known = {pool.name for pool in every}
    missing = [pool for pool in pool_list if pool not in known]
    if missing:
        raise BadRequest(f"Pool {missing[0]} does not exist.")
    for pool in pool_list:
        pools.tag(pool, name)
    for pool in every:
        if pool.flavor == name and pool.name not in pool_list:
            pools.tag(pool.name, None, only_if=name)


def create_flavor(ctx: Context, name: str, document: object) -> None:
    _places(ctx, "flavor", name)
    validate("flavor", document, ctx.settings)
    _regroup(ctx, name, document["pool_list"])
    storage(ctx).flavors.save(Flavor(name, document.get("capabilities") or {}))


def get_flavor(ctx: Context, name: str) -> Flavor:
    _places(ctx, "flavor", name)
    flavor = storage(ctx).flavors.get(name)
    if flavor is None:
        raise NotFound(f"Flavor {name} does not exist.")
    return flavor


def list_flavors(ctx: Context, marker: str | None, limit: int | None) -> list[Flavor]:
    _places(ctx)
    return storage(ctx).flavors.list_page(marker, _page_size(limit))


def update_flavor(ctx: Context, name: str, document: object) -> Flavor:
    flavor = get_flavor(ctx, name)
    validate("flavor", document, ctx.settings)
    _regroup(ctx, name, document["pool_list"])
    if "capabilities" in document:
        flavor = Flavor(name, document["capabilities"] or {})
        storage(ctx).flavors.save(flavor)
    return flavor


def delete_flavor(ctx: Context, name: str) -> None:
    _places(ctx, "flavor", name)
    storage(ctx).flavors.delete(name)
    # Its pools are free again (to be deleted, or grouped anew).
    for pool in storage(ctx).pools.in_flavor(name):
        storage(ctx).pools.tag(pool.name, None, only_if=name)


def placement(ctx: Context, metadata: dict) -> Pool | None:
    """The pool a queue created now with `metadata` goes to: one of its
    `_flavor`'s pools, by weight (None: the stage's tables)."""
    name = metadata.get("_flavor")
    if not ctx.settings.pooling or not name:
        return None
    if not isinstance(name, str) or storage(ctx).flavors.get(name) is None:
        raise BadRequest(f"Flavor {name} does not exist.")
    candidates = [pool for pool in storage(ctx).pools.in_flavor(name) if pool.weight > 0]
    if not candidates:
        raise BadRequest(f"Flavor {name} has no pool of weight above 0.")
    return random.choices(candidates, weights=[pool.weight for pool in candidates])[0]

"""Pools and flavors (admin; contract §3.6-3.7), on stages with admin_mode
and pooling: see actions/pools.py."""
from urllib.parse import urlencode

from chalice import Blueprint

from chalicelib.actions import pools
from chalicelib.rest import respond, route
from chalicelib.validation import param_bool, param_int, param_text

bp = Blueprint(__name__)


def _page(call, collection, entries):
    """A list answer: the entries, a next link while there are any, and
    Content-Location, as Zaqar answers."""
    query = {"marker": entries[-1]["name"]} if entries else {}
    for name in ("limit", "detailed"):
        if param_text(call.params, name) is not None:
            query[name] = call.params[name]
    links = [{"rel": "next", "href": f"/v2/{collection}?{urlencode(query)}"}] if entries else []
    location = call.request.path + (f"?{urlencode(call.params)}" if call.params else "")
    return respond(200, {collection: entries, "links": links},
                   {"Content-Location": location})


@route(bp, "/v2/pools", ["GET"], "pools:get_all")
def list_pools(call):
    detailed = bool(param_bool(call.params, "detailed"))
    found = pools.list_pools(call.ctx, param_text(call.params, "marker"),
                             param_int(call.params, "limit"))
    return _page(call, "pools", [pools.shown_pool(pool, detailed) for pool in found])


@route(bp, "/v2/pools/{pool_name}", ["PUT"], "pools:create")
def create_pool(call, pool_name):
    pools.create_pool(call.ctx, pool_name, call.body())
    return respond(201, None, {"Location": f"/v2/pools/{pool_name}"})


@route(bp, "/v2/pools/{pool_name}", ["GET"], "pools:get")
def get_pool(call, pool_name):
    pool = pools.get_pool(call.ctx, pool_name)
    return respond(200, pools.shown_pool(pool, bool(param_bool(call.params, "detailed"))))


@route(bp, "/v2/pools/{pool_name}", ["PATCH"], "pools:update")
def update_pool(call, pool_name):
    pool = pools.update_pool(call.ctx, pool_name, call.body())
    return respond(200, pools.shown_pool(pool))


@route(bp, "/v2/pools/{pool_name}", ["DELETE"], "pools:delete")
def delete_pool(call, pool_name):
    pools.delete_pool(call.ctx, pool_name)
    return respond(204)


@route(bp, "/v2/flavors", ["GET"], "flavors:get_all")
def list_flavors(call):
    detailed = bool(param_bool(call.params, "detailed"))
    found = pools.list_flavors(call.ctx, param_text(call.params, "marker"),
                               param_int(call.params, "limit"))
    return _page(call, "flavors", pools.shown_flavors(call.ctx, found, detailed))


@route(bp, "/v2/flavors/{flavor_name}", ["PUT"], "flavors:create")
def create_flavor(call, flavor_name):
    pools.create_flavor(call.ctx, flavor_name, call.body())
    return respond(201, None, {"Location": f"/v2/flavors/{flavor_name}"})


@route(bp, "/v2/flavors/{flavor_name}", ["GET"], "flavors:get")
def get_flavor(call, flavor_name):
    flavor = pools.get_flavor(call.ctx, flavor_name)
    return respond(200, pools.shown_flavor(call.ctx, flavor))


@route(bp, "/v2/flavors/{flavor_name}", ["PATCH"], "flavors:update")
def update_flavor(call, flavor_name):
    flavor = pools.update_flavor(call.ctx, flavor_name, call.body())
    return respond(200, pools.shown_flavor(call.ctx, flavor))


@route(bp, "/v2/flavors/{flavor_name}", ["DELETE"], "flavors:delete")
def delete_flavor(call, flavor_name):
    pools.delete_flavor(call.ctx, flavor_name)
    return respond(204)

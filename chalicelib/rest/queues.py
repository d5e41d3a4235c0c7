"""Queue routes: list, create, get, patch, delete, stats, purge."""
from urllib.parse import urlencode

from chalice import Blueprint

from chalicelib.actions import queues
from chalicelib.errors import UnsupportedMediaType
from chalicelib.rest import respond, route
from chalicelib.validation import param_bool, param_int, param_text

bp = Blueprint(__name__)
LIST_PARAMS = ("marker", "limit", "detailed", "name", "with_count")


def _next_link(params, last_name):
    """The next-page link: the list parameters the client gave, as parsed (in
    Zaqar's order), with the marker moved on. Metadata filters are dropped,
    as Zaqar drops them."""
    query = {}
    for name in LIST_PARAMS:
        if param_text(params, name) is None:
            continue
        if name in ("detailed", "with_count"):
            query[name] = str(param_bool(params, name)).lower()
        elif name == "limit":
            query[name] = param_int(params, name)
        else:
            query[name] = param_text(params, name)
    query["marker"] = last_name
    return {"rel": "next", "href": "/v2/queues?" + urlencode(query)}


@route(bp, "/v2/queues", ["GET"], "queues:get_all")
def list_queues(call):
    params = call.params
    filters = {key: param_text(params, key) for key in params if key not in LIST_PARAMS}
    found, count = queues.list_queues(
        call.ctx, marker=param_text(params, "marker"), limit=param_int(params, "limit"),
        detailed=param_bool(params, "detailed"), name=param_text(params, "name"),
        with_count=param_bool(params, "with_count"), metadata_filters=filters)
    for entry in found:
        entry["href"] = f"/v2/queues/{entry['name']}"
    # Even a last page has a next link: clients stop on an empty page.
    links = [_next_link(params, found[-1]["name"])] if found else []
    body = {"queues": found, "links": links}
    if count:
        body["count"] = count
    return respond(200, body)


@route(bp, "/v2/queues/{queue_name}", ["PUT"], "queues:create")
def create_queue(call, queue_name):
    queues.check_metadata_size(call.content_length, call.settings)
    metadata = call.body(required=False)
    created = queues.create(call.ctx, queue_name, metadata)
    return respond(201 if created else 204, None,
                   {"Location": f"/v2/queues/{queue_name}"})


@route(bp, "/v2/queues/{queue_name}", ["GET"], "queues:get")
def get_queue(call, queue_name):
    return respond(200, queues.with_defaults(queues.get(call.ctx, queue_name),
                                             call.settings))


@route(bp, "/v2/queues/{queue_name}", ["PATCH"], "queues:update")
def patch_queue(call, queue_name):
    if call.headers.get("content-type") != queues.PATCH_MEDIA_TYPE:
        raise UnsupportedMediaType(
            "Accepted media type for PATCH: "
            f"{{'Accept-Patch': '{queues.PATCH_MEDIA_TYPE}'}}")
    queues.check_metadata_size(call.content_length, call.settings)
    operations = call.body(required=False)
    return respond(200, queues.patch(call.ctx, queue_name, operations))


@route(bp, "/v2/queues/{queue_name}", ["DELETE"], "queues:delete")
def delete_queue(call, queue_name):
    queues.delete(call.ctx, queue_name)
    return respond(204)


@route(bp, "/v2/queues/{queue_name}/stats", ["GET"], "queues:stats")
def queue_stats(call, queue_name):
    shown, _ = queues.stats(call.ctx, queue_name)
    return respond(200, {"messages": shown})


@route(bp, "/v2/queues/{queue_name}/purge", ["POST"], "queues:purge")
def purge_queue(call, queue_name):
    queues.purge(call.ctx, queue_name, call.body(required=False))
    return respond(204)


@route(bp, "/v2/queues/{queue_name}/share", ["POST"], "queues:share")
def share_queue(call, queue_name):
    return respond(200, queues.share(call.ctx, queue_name, call.body(required=False)))

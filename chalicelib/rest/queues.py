"""Queue routes: list, create, get, patch, delete, stats, purge."""
from urllib.parse import urlencode

from chalice import Blueprint

from chalicelib.actions import queues
from chalicelib.errors import UnsupportedMediaType
from chalicelib.rest import respond, route
from chalicelib.validation import param_bool, param_int

bp = Blueprint(__name__)
LIST_PARAMS = ("marker", "limit", "detailed", "name", "with_count")


@route(bp, "/v2/queues", ["GET"])
def list_queues(call):
    params = call.params
    detailed = param_bool(params, "detailed")
    with_count = param_bool(params, "with_count")
    limit = param_int(params, "limit")
    filters = {key: value for key, value in params.items()
               if key not in LIST_PARAMS and isinstance(value, str)}
    found, count = queues.list_queues(
        call.ctx, marker=params.get("marker"), limit=limit, detailed=detailed,
        name=params.get("name"), with_count=with_count, metadata_filters=filters)
    for entry in found:
        entry["href"] = f"/v2/queues/{entry['name']}"
    links = []
    if found:
        query = {key: params[key] for key in LIST_PARAMS
                 if key in params and key != "marker" and isinstance(params[key], str)}
        query["marker"] = found[-1]["name"]
        links.append({"rel": "next", "href": "/v2/queues?" + urlencode(query)})
    body = {"queues": found, "links": links}
    if count:
        body["count"] = count
    return respond(200, body)


@route(bp, "/v2/queues/{queue_name}", ["PUT"])
def create_queue(call, queue_name):
    queues.check_metadata_size(call.content_length, call.settings)
    metadata = call.body(required=False)
    created = queues.create(call.ctx, queue_name, metadata)
    return respond(201 if created else 204, None,
                   {"Location": f"/v2/queues/{queue_name}"})


@route(bp, "/v2/queues/{queue_name}", ["GET"])
def get_queue(call, queue_name):
    return respond(200, queues.with_defaults(queues.get(call.ctx, queue_name),
                                             call.settings))


@route(bp, "/v2/queues/{queue_name}", ["PATCH"])
def patch_queue(call, queue_name):
    if call.headers.get("content-type") != queues.PATCH_MEDIA_TYPE:
        raise UnsupportedMediaType(
            "Accepted media type for PATCH: "
            f"{{'Accept-Patch': '{queues.PATCH_MEDIA_TYPE}'}}")
    queues.check_metadata_size(call.content_length, call.settings)
    operations = call.body(required=False)
    return respond(200, queues.patch(call.ctx, queue_name, operations))


@route(bp, "/v2/queues/{queue_name}", ["DELETE"])
def delete_queue(call, queue_name):
    queues.delete(call.ctx, queue_name)
    return respond(204)

"""Versions, the JSON-home document, this API's OpenAPI description, ping and
health."""
from chalice import Blueprint

from chalicelib.actions import health as health_action
from chalicelib.actions.home import home_document
from chalicelib.errors import NotFound
from chalicelib.rest import respond, route

bp = Blueprint(__name__)

VERSIONS = {"versions": [{
    "id": "2", "status": "CURRENT", "updated": "2014-9-24T04:06:47Z",
    "media-types": [{"base": "application/json",
                     "type": "application/vnd.openstack.messaging-v2+json"}],
    "links": [{"href": "/v2/", "rel": "self"}]}]}


@route(bp, "/", ["GET"], None)
def versions(call):
    return respond(300, VERSIONS)


# API Gateway routes "/v2/" and "/v2" alike; only the raw path tells them
# apart, and Zaqar serves the home document at "/v2/" alone.
@route(bp, "/v2", ["GET"], "home:get")
def home(call):
    if not call.request.context.get("path", "").endswith("/"):
        raise NotFound(title="404 Not Found")
    return respond(200, home_document(call.settings), {"Cache-Control": "max-age=86400"},
                   content_type="application/json-home")


@route(bp, "/v2/openapi.json", ["GET"], None)
def openapi_description(call):
    from chalicelib.rest import openapi  # on first use: ~20 ms of every cold start otherwise
    return respond(200, openapi.describe(bp.current_app, call.settings))


@route(bp, "/v2/ping", ["GET", "HEAD"], "ping:get")
def ping(call):
    if call.request.method == "GET" and not health_action.storage_reachable(call.ctx):
        return respond(503, {"title": "Service temporarily unavailable",
                             "description": "Storage is not reachable."
                                            " Please try again in a few seconds."})
    return respond(204)


@route(bp, "/v2/health", ["GET"], "health:get")
def health(call):
    return respond(200, health_action.health(call.ctx))

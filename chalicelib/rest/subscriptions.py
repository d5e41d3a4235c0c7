"""Subscription routes: list, create, get, update, delete, confirm."""
from urllib.parse import urlencode

from chalice import Blueprint

from chalicelib import clock
from chalicelib.actions import subscriptions
from chalicelib.errors import Conflict
from chalicelib.rest import respond, route
from chalicelib.validation import param_int, param_text

bp = Blueprint(__name__)


@route(bp, "/v2/queues/{queue_name}/subscriptions", ["GET"], "subscription:get_all")
def list_subscriptions(call, queue_name):
    limit = param_int(call.params, "limit")
    found = subscriptions.list_subscriptions(
        call.ctx, queue_name, marker=param_text(call.params, "marker"), limit=limit)
    now = clock.now_ms()
    links = []
    if found:
        query = {"limit": limit} if limit is not None else {}
        query["marker"] = found[-1].id
        links.append({"rel": "next", "href": f"/v2/queues/{queue_name}/subscriptions?"
                      + urlencode(query)})
    return respond(200, {"subscriptions": [subscriptions.view(s, now) for s in found],
                         "links": links})


@route(bp, "/v2/queues/{queue_name}/subscriptions", ["POST"], "subscription:create")
def create_subscription(call, queue_name):
    location = {"Location": f"/v2/queues/{queue_name}/subscriptions"}
    try:
        subscription_id, _ = subscriptions.create(call.ctx, queue_name,
                                                  call.body(required=False) or {})
    except Conflict as conflict:
        conflict.headers.update(location)
        raise
    return respond(201, {"subscription_id": subscription_id}, location)


@route(bp, "/v2/queues/{queue_name}/subscriptions/{subscription_id}", ["GET"], "subscription:get")
def get_subscription(call, queue_name, subscription_id):
    found = subscriptions.get(call.ctx, queue_name, subscription_id)
    return respond(200, subscriptions.view(found, clock.now_ms()))


@route(bp, "/v2/queues/{queue_name}/subscriptions/{subscription_id}", ["PATCH"],
       "subscription:update")
def update_subscription(call, queue_name, subscription_id):
    subscriptions.update(call.ctx, queue_name, subscription_id, call.body(required=False))
    return respond(204, None, {
        "Location": f"/v2/queues/{queue_name}/subscriptions/{subscription_id}"})


@route(bp, "/v2/queues/{queue_name}/subscriptions/{subscription_id}", ["DELETE"],
       "subscription:delete")
def delete_subscription(call, queue_name, subscription_id):
    subscriptions.delete(call.ctx, queue_name, subscription_id)
    return respond(204)


@route(bp, "/v2/queues/{queue_name}/subscriptions/{subscription_id}/confirm", ["PUT"],
       "subscription:confirm")
def confirm_subscription(call, queue_name, subscription_id):
    subscriptions.confirm(call.ctx, queue_name, subscription_id, call.body(required=False))
    return respond(204, None, {
        "Location": f"/v2/queues/{queue_name}/subscriptions/{subscription_id}/confirm"})

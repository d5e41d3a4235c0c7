"""Every action of the websocket API (zaqar-v2-api.md §10.3).

Each runs the same action code as its REST route, with the same checks, and
shapes the answer the websocket way: (status, body), with messages as
`{"id", "claim_id", "ttl", "age", "body"}` and no hrefs or links.
"""
import json
from dataclasses import dataclass

from chalicelib import clock
from chalicelib.actions import claims, health, messages, pools, queues, subscriptions, topics
from chalicelib.actions.home import home_document
from chalicelib.errors import Conflict, ServiceUnavailable
from chalicelib.validation import Context
from chalicelib.websocket import push


@dataclass(frozen=True)
class Call:
    """One checked request: who asks, the frame's body, and the connection
    it came on as a push target (a subscription without a subscriber
    subscribes it, see push.py)."""
    ctx: Context
    body: dict
    subscriber: str


def _message(message):
    return {"id": message.id, "claim_id": message.claim_id, "ttl": message.ttl,
            "age": message.age, "body": message.body}


def _messages(found):
    return [_message(message) for message in found]


def _claim_document(body):
    return {key: body[key] for key in ("ttl", "grace") if key in body}


# -- the node ---------------------------------------------------------------

def authenticate(call):
    # Without authentication (noauth) every connection is authenticated;
    # with Keystone the protocol checks the token first (protocol.py).
    return 200, {"message": "Authentified."}


def ping(call):
    if not health.storage_reachable(call.ctx):
        raise ServiceUnavailable("Storage is not reachable.")
    return 204, {}


def check_node_health(call):
    return 200, health.health(call.ctx)


def get_home_doc(call):
    return 200, home_document(call.ctx.settings)


# -- queues -----------------------------------------------------------------

def queue_list(call):
    body = call.body
    found, _ = queues.list_queues(call.ctx, marker=body.get("marker"),
                                  limit=body.get("limit"),
                                  detailed=body.get("detailed", False))
    return 200, {"queues": found}


def queue_create(call):
    name, metadata = call.body["queue_name"], call.body.get("metadata", {})
    queues.check_metadata_size(len(json.dumps(metadata).encode()), call.ctx.settings)
    created = queues.create(call.ctx, name, metadata)
    return (201 if created else 204), f"Queue {name} created."


def queue_get(call):
    # Raw metadata: the websocket fills in no reserved defaults (§10.3).
    return 200, queues.get(call.ctx, call.body["queue_name"])


def queue_delete(call):
    name = call.body["queue_name"]
    queues.delete(call.ctx, name)
    return 204, f"Queue {name} removed."


def queue_get_stats(call):
    shown, exists = queues.stats(call.ctx, call.body["queue_name"])
    # Zeros for a missing queue, as over REST, but with 404 (§10.3).
    return (200 if exists else 404), {"messages": shown}


def queue_purge(call):
    resource_types = call.body.get("resource_types")
    queues.purge(call.ctx, call.body["queue_name"],
                 None if resource_types is None else {"resource_types": resource_types})
    return 204, {}


# -- messages ---------------------------------------------------------------

def message_post(call):
    ids = messages.post(call.ctx, call.body["queue_name"],
                        {"messages": call.body["messages"]})
    return 201, {"message_ids": ids}


def message_list(call):
    body = call.body
    found, _, _ = messages.list_messages(
        call.ctx, body["queue_name"], marker=body.get("marker"), limit=body.get("limit"),
        echo=body.get("echo", False), include_claimed=body.get("include_claimed", False),
        include_delayed=body.get("include_delayed", False))
    return 200, {"messages": _messages(found)}


def message_get(call):
    # One message under a plural key, as Zaqar answers.
    found = messages.get(call.ctx, call.body["queue_name"], call.body["message_id"])
    return 200, {"messages": _message(found)}


def message_get_many(call):
    found = messages.get_many(call.ctx, call.body["queue_name"], call.body["message_ids"])
    return 200, {"messages": _messages(found)}


def message_delete(call):
    messages.delete(call.ctx, call.body["queue_name"], call.body["message_id"],
                    call.body.get("claim_id"))
    return 204, {}


def message_delete_many(call):
    body = call.body
    popped = messages.delete_or_pop(call.ctx, body["queue_name"],
                                    ids=body.get("message_ids"), pop=body.get("pop"),
                                    claim_ids=body.get("claim_ids"))
    if popped is None:
        return 204, {}
    return 200, {"messages": _messages(popped)}


# -- claims -----------------------------------------------------------------

def claim_create(call):
    body = call.body
    claim_id, taken = claims.create(call.ctx, body["queue_name"], _claim_document(body),
                                    limit=body.get("limit"))
    if not taken:
        return 204, {"claim_id": None}
    return 201, {"claim_id": claim_id, "messages": _messages(taken)}


def claim_get(call):
    age, ttl, held = claims.get(call.ctx, call.body["queue_name"], call.body["claim_id"])
    return 200, {"age": age, "ttl": ttl, "messages": _messages(held)}


def claim_update(call):
    claim_id = call.body["claim_id"]
    claims.update(call.ctx, call.body["queue_name"], claim_id,
                  _claim_document(call.body))
    return 204, f"Claim {claim_id} updated."


def claim_delete(call):
    claim_id = call.body["claim_id"]
    claims.delete(call.ctx, call.body["queue_name"], claim_id)
    return 204, f"Claim {claim_id} deleted."


# -- subscriptions ----------------------------------------------------------

def subscription_create(call):
    """Without a subscriber, the connection itself subscribes (§10.4). A
    subscriber the queue already has is a 409, whether or not confirmed.
    Beyond Zaqar, `"topic": true` subscribes to the topic of that name."""
    name = call.body["queue_name"]
    ctx = topics.context(call.ctx) if call.body.get("topic") else call.ctx
    document = {key: call.body[key] for key in ("subscriber", "ttl", "options")
                if key in call.body}
    try:
        if "subscriber" in document:
            subscription_id, created = subscriptions.create(ctx, name, document)
        else:
            subscription_id, created = push.subscribe(ctx, name, call.subscriber, document)
    except Conflict:
        created = False
    if not created:
        return 409, f"Subscription {name} not created."
    return 201, {"subscription_id": subscription_id,
                 "message": f"Subscription {name} created."}


def subscription_get(call):
    found = subscriptions.get(call.ctx, call.body["queue_name"],
                              call.body["subscription_id"])
    return 200, subscriptions.view(found, clock.now_ms())


def subscription_list(call):
    found = subscriptions.list_subscriptions(
        call.ctx, call.body["queue_name"], marker=call.body.get("marker"),
        limit=call.body.get("limit"))
    now = clock.now_ms()
    return 200, {"subscriptions": [subscriptions.view(found_one, now)
                                   for found_one in found]}


def subscription_delete(call):
    subscription_id = call.body["subscription_id"]
    subscriptions.delete(call.ctx, call.body["queue_name"], subscription_id)
    return 204, f"Subscription {subscription_id} removed."


# -- pools and flavors (admin; pooling stages) ---------------------------------
# The body names the pool or flavor and holds the REST document's fields.

def _document(body, name_field):
    return {key: value for key, value in body.items() if key != name_field}


def pool_list(call):
    found = pools.list_pools(call.ctx, call.body.get("marker"), call.body.get("limit"))
    detailed = call.body.get("detailed", False)
    return 200, {"pools": [pools.shown_pool(pool, detailed) for pool in found]}


def pool_create(call):
    name = call.body["pool_name"]
    pools.create_pool(call.ctx, name, _document(call.body, "pool_name"))
    return 201, f"Pool {name} created."


def pool_get(call):
    return 200, pools.shown_pool(pools.get_pool(call.ctx, call.body["pool_name"]),
                                 call.body.get("detailed", False))


def pool_update(call):
    return 200, pools.shown_pool(pools.update_pool(
        call.ctx, call.body["pool_name"], _document(call.body, "pool_name")))


def pool_delete(call):
    pools.delete_pool(call.ctx, call.body["pool_name"])
    return 204, f"Pool {call.body['pool_name']} removed."


def flavor_list(call):
    found = pools.list_flavors(call.ctx, call.body.get("marker"), call.body.get("limit"))
    detailed = call.body.get("detailed", False)
    return 200, {"flavors": pools.shown_flavors(call.ctx, found, detailed)}


def flavor_create(call):
    name = call.body["flavor_name"]
    pools.create_flavor(call.ctx, name, _document(call.body, "flavor_name"))
    return 201, f"Flavor {name} created."


def flavor_get(call):
    return 200, pools.shown_flavor(call.ctx, pools.get_flavor(call.ctx,
                                                              call.body["flavor_name"]))


def flavor_update(call):
    return 200, pools.shown_flavor(call.ctx, pools.update_flavor(
        call.ctx, call.body["flavor_name"], _document(call.body, "flavor_name")))


def flavor_delete(call):
    pools.delete_flavor(call.ctx, call.body["flavor_name"])
    return 204, f"Flavor {call.body['flavor_name']} removed."


# Each action, with its policy rule (chalicelib/auth/policy.py; None: none).
ACTIONS = {
    "authenticate": (authenticate, None),
    "ping": (ping, "ping:get"),
    "ping_node": (ping, "ping:get"),
    "check_node_health": (check_node_health, "health:get"),
    "get_home_doc": (get_home_doc, "home:get"),
    "queue_list": (queue_list, "queues:get_all"),
    "queue_create": (queue_create, "queues:create"),
    "queue_get": (queue_get, "queues:get"),
    "queue_delete": (queue_delete, "queues:delete"),
    "queue_get_stats": (queue_get_stats, "queues:stats"),
    "queue_purge": (queue_purge, "queues:purge"),
    "message_post": (message_post, "messages:create"),
    "message_list": (message_list, "messages:get_all"),
    "message_get": (message_get, "messages:get"),
    "message_get_many": (message_get_many, "messages:get_all"),
    "message_delete": (message_delete, "messages:delete"),
    "message_delete_many": (message_delete_many, "messages:delete_all"),
    "claim_create": (claim_create, "claims:create"),
    "claim_get": (claim_get, "claims:get"),
    "claim_update": (claim_update, "claims:update"),
    "claim_delete": (claim_delete, "claims:delete"),
    "subscription_create": (subscription_create, "subscription:create"),
    "subscription_get": (subscription_get, "subscription:get"),
    "subscription_list": (subscription_list, "subscription:get_all"),
    "subscription_delete": (subscription_delete, "subscription:delete"),
    "pool_list": (pool_list, "pools:get_all"),
    "pool_create": (pool_create, "pools:create"),
    "pool_get": (pool_get, "pools:get"),
    "pool_update": (pool_update, "pools:update"),
    "pool_delete": (pool_delete, "pools:delete"),
    "flavor_list": (flavor_list, "flavors:get_all"),
    "flavor_create": (flavor_create, "flavors:create"),
    "flavor_get": (flavor_get, "flavors:get"),
    "flavor_update": (flavor_update, "flavors:update"),
    "flavor_delete": (flavor_delete, "flavors:delete"),
}
# The actions a URL signature may allow, as the HTTP method it must sign.
SIGNED_METHODS = {"message_list": "GET", "message_get": "GET", "message_get_many": "GET",
                  "message_post": "POST", "message_delete": "DELETE",
                  "message_delete_many": "DELETE"}

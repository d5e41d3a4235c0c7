"""Message and claim routes."""
from urllib.parse import urlencode

from chalice import Blueprint

from chalicelib.actions import claims, messages
from chalicelib.rest import respond, route
from chalicelib.validation import param_bool, param_int, param_list, param_text

bp = Blueprint(__name__)


def message_view(queue_name, message):
    href = f"/v2/queues/{queue_name}/messages/{message.id}"
    if message.claim_id:
        href += f"?claim_id={message.claim_id}"
    return with_checksum({"id": message.id, "href": href, "ttl": message.ttl,
                          "age": message.age, "body": message.body}, message)


def popped_view(message):
    """A popped message is shown as the raw record Zaqar returns: no href."""
    return with_checksum({"id": message.id, "age": message.age, "ttl": message.ttl,
                          "body": message.body, "claim_id": message.claim_id,
                          "claim_count": message.claim_count}, message)


def with_checksum(view, message):
    if message.checksum:
        view["checksum"] = message.checksum
    return view


@route(bp, "/v2/queues/{queue_name}/messages", ["POST"], "messages:create")
def post_messages(call, queue_name):
    ids = messages.post(call.ctx, queue_name, call.body(),
                        size=call.content_length)
    base = f"/v2/queues/{queue_name}/messages"
    return respond(201, {"resources": [f"{base}/{message_id}" for message_id in ids]},
                   {"Location": f"{base}?ids={','.join(ids)}"})


@route(bp, "/v2/queues/{queue_name}/messages", ["GET"], "messages:get_all")
def list_messages(call, queue_name):
    params = call.params
    ids = param_list(params, "ids")
    if ids is not None:
        found = messages.get_many(call.ctx, queue_name, ids)
        return respond(200, {"messages": [message_view(queue_name, m) for m in found]})
    echo = param_bool(params, "echo")
    include_claimed = param_bool(params, "include_claimed")
    limit = param_int(params, "limit")
    found, marker, include_delayed = messages.list_messages(
        call.ctx, queue_name, marker=params.get("marker"), limit=limit, echo=echo,
        include_claimed=include_claimed,
        include_delayed=param_bool(params, "include_delayed"))
    links = []
    if found:
        # As Zaqar: the parameters given, include_delayed also when forced on.
        applied = {"limit": limit, "echo": echo, "include_claimed": include_claimed,
                   "include_delayed": include_delayed}
        query = {name: str(value).lower() for name, value in applied.items()
                 if name in params or (name == "include_delayed" and value)}
        query["marker"] = marker
        links.append({"rel": "next", "href": f"/v2/queues/{queue_name}/messages?"
                      + urlencode(query)})
    return respond(200, {"messages": [message_view(queue_name, m) for m in found],
                         "links": links})


@route(bp, "/v2/queues/{queue_name}/messages", ["DELETE"], "messages:delete_all")
def delete_messages(call, queue_name):
    popped = messages.delete_or_pop(
        call.ctx, queue_name, ids=param_list(call.params, "ids"),
        pop=param_int(call.params, "pop"),
        claim_ids=param_list(call.params, "claim_ids"))
    if popped is None:
        return respond(204)
    return respond(200, {"messages": [popped_view(m) for m in popped]})


@route(bp, "/v2/queues/{queue_name}/messages/{message_id}", ["GET"], "messages:get")
def get_message(call, queue_name, message_id):
    return respond(200, message_view(queue_name,
                                     messages.get(call.ctx, queue_name, message_id)))


@route(bp, "/v2/queues/{queue_name}/messages/{message_id}", ["DELETE"], "messages:delete")
def delete_message(call, queue_name, message_id):
    messages.delete(call.ctx, queue_name, message_id, param_text(call.params, "claim_id"))
    return respond(204)


@route(bp, "/v2/queues/{queue_name}/claims", ["POST"], "claims:create")
def create_claim(call, queue_name):
    claim_id, taken = claims.create(call.ctx, queue_name, call.body(required=False),
                                    limit=param_int(call.params, "limit"))
    if not taken:
        return respond(204)
    return respond(201, {"messages": [message_view(queue_name, m) for m in taken]},
                   {"Location": f"/v2/queues/{queue_name}/claims/{claim_id}"})


@route(bp, "/v2/queues/{queue_name}/claims/{claim_id}", ["GET"], "claims:get")
def get_claim(call, queue_name, claim_id):
    age, ttl, held = claims.get(call.ctx, queue_name, claim_id)
    return respond(200, {"age": age, "ttl": ttl,
                         "href": f"/v2/queues/{queue_name}/claims/{claim_id}",
                         "messages": [message_view(queue_name, m) for m in held]})


@route(bp, "/v2/queues/{queue_name}/claims/{claim_id}", ["PATCH"], "claims:update")
def update_claim(call, queue_name, claim_id):
    claims.update(call.ctx, queue_name, claim_id, call.body(required=False))
    return respond(204)


@route(bp, "/v2/queues/{queue_name}/claims/{claim_id}", ["DELETE"], "claims:delete")
def delete_claim(call, queue_name, claim_id):
    claims.delete(call.ctx, queue_name, claim_id)
    return respond(204)

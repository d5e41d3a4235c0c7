"""Topic routes: Zaqar's /v2/topics, served by the queue routes' own views.

A topic is a queue kept apart from the project's queues (actions.topics):
each topic route runs its queue route's view for the caller's topics, and
answers with the topic's paths. Topics have no claims (their messages are
for subscribers) and no signed URLs.
"""
import functools
import json

from chalice import Blueprint

from chalicelib.actions import topics
from chalicelib.errors import NotFound
from chalicelib.rest import messages, queues, route, subscriptions

bp = Blueprint(__name__)
QUEUES, TOPICS = "/v2/queues", "/v2/topics"


def _topic_paths(value):
    """`value` with every href (and posted resource) naming a queue path
    named as the topic's, and a list's "queues" as "topics"."""
    if isinstance(value, dict):
        return {("topics" if key == "queues" else key):
                _renamed(item) if key == "href" else _topic_paths(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_topic_paths(item) for item in value]
    return value


def _renamed(path):
    return TOPICS + path[len(QUEUES):] if isinstance(path, str) and path.startswith(
        QUEUES) else path


def _as_topic(view):
    """The queue view, run for the caller's topics, answering in topic paths."""
    @functools.wraps(view)
    def topic_view(call, topic_name=None, **path_params):
        call.ctx = topics.context(call.ctx)
        if topic_name is not None:
            path_params["queue_name"] = topic_name
        response = view(call, **path_params)
        if response.body:
            body = _topic_paths(json.loads(response.body))
            if isinstance(body, dict) and "resources" in body:
                body["resources"] = [_renamed(path) for path in body["resources"]]
            response.body = json.dumps(body)
        if "Location" in response.headers:
            response.headers["Location"] = _renamed(response.headers["Location"])
        return response
    return topic_view


TWINS = [  # (topic path, methods, policy rule, the queue route's view)
    ("", ["GET"], "topics:get_all", queues.list_queues),
    ("/{topic_name}", ["PUT"], "topics:create", queues.create_queue),
    ("/{topic_name}", ["GET"], "topics:get", queues.get_queue),
    ("/{topic_name}", ["PATCH"], "topics:update", queues.patch_queue),
    ("/{topic_name}", ["DELETE"], "topics:delete", queues.delete_queue),
    ("/{topic_name}/stats", ["GET"], "topics:stats", queues.queue_stats),
    ("/{topic_name}/purge", ["POST"], "topics:purge", queues.purge_queue),
    ("/{topic_name}/messages", ["POST"], "messages:create", messages.post_messages),
    ("/{topic_name}/messages", ["GET"], "messages:get_all", messages.list_messages),
    ("/{topic_name}/messages", ["DELETE"], "messages:delete_all", messages.delete_messages),
    ("/{topic_name}/messages/{message_id}", ["GET"], "messages:get", messages.get_message),
    ("/{topic_name}/messages/{message_id}", ["DELETE"], "messages:delete",
     messages.delete_message),
    ("/{topic_name}/subscriptions", ["GET"], "subscription:get_all",
     subscriptions.list_subscriptions),
    ("/{topic_name}/subscriptions", ["POST"], "subscription:create",
     subscriptions.create_subscription),
    ("/{topic_name}/subscriptions/{subscription_id}", ["GET"], "subscription:get",
     subscriptions.get_subscription),
    ("/{topic_name}/subscriptions/{subscription_id}", ["PATCH"], "subscription:update",
     subscriptions.update_subscription),
    ("/{topic_name}/subscriptions/{subscription_id}", ["DELETE"], "subscription:delete",
     subscriptions.delete_subscription),
    ("/{topic_name}/subscriptions/{subscription_id}/confirm", ["PUT"],
     "subscription:confirm", subscriptions.confirm_subscription),
]
for path, methods, rule, view in TWINS:
    route(bp, TOPICS + path, methods, rule)(_as_topic(view))


# Zaqar declares no claim routes on topics: its answer for a path it does not have.
@route(bp, TOPICS + "/{topic_name}/claims", ["POST"], "claims:create")
def claim_topic(call, topic_name):
    raise NotFound(title="404 Not Found")


@route(bp, TOPICS + "/{topic_name}/claims/{claim_id}", ["GET", "PATCH", "DELETE"],
       "claims:get")
def topic_claim(call, topic_name, claim_id):
    raise NotFound(title="404 Not Found")

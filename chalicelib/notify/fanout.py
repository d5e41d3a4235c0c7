"""Topics' own subscribers: queues of the topic's project (`queue:NAME`).

A topic is a queue in its project's topic space (a storage project key
that ends in TOPIC_SPACE, which no Keystone project id can name), so
posting to it notifies its subscribers as any queue's are. A subscriber
`queue:NAME` gets its own copy of each message posted to the queue NAME of
the topic's project (created if missing, as a post creates it), to be
claimed there as usual. Deliveries are at least once: a retried one may
post a second copy.
"""
from urllib.parse import urlsplit

from chalicelib.notify.transports import DELIVERED
from chalicelib.storage.base import TOPIC_SPACE

SCHEME = "queue"
# The Client-ID the copies are posted with: what a consumer's echo=false hides.
CLIENT_ID = "00000000-0000-0000-0000-000000007091"


def owner(project: str) -> tuple[str, bool]:
    """(the project a storage project key belongs to, whether it is that
    project's topic space)."""
    if project.endswith(TOPIC_SPACE):
        return project[:-len(TOPIC_SPACE)], True
    return project, False


def is_queue(subscriber: str) -> bool:
    return urlsplit(subscriber).scheme.lower() == SCHEME


def queue_named(subscriber: str) -> str:
    """The queue a `queue:NAME` subscriber names."""
    return urlsplit(subscriber).path


def post_copy(subscription, payload):
    """Post the notified message to the subscriber's queue: an Outcome."""
    # The stores on first use: the API imports this module for owner(), and
    # their pynamodb costs ~150 ms of a cold start that may post nothing.
    from chalicelib.storage import messages as message_store
    from chalicelib.storage import places
    from chalicelib.storage import queues as queue_store
    project, _ = owner(subscription.queue.rsplit("/", 1)[0])
    queue = queue_named(subscription.subscriber)
    facts = queue_store.facts(project, queue, fresh=True)
    if facts is None:
        queue_store.create(project, queue, {})
    with places.at(facts.location if facts else None):  # the queue's pool, if placed on one
        message_store.post(project, queue, [{"body": payload["body"], "ttl": payload["ttl"]}],
                           CLIENT_ID)
    return DELIVERED

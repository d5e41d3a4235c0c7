"""The storage contract: one interface per resource, the results they return
and the driver that holds one store of each.

In the spirit of Zaqar's zaqar/storage/base.py (one controller per resource)
and Powertools' persistence/base.py (a backend-neutral base): nothing here
knows DynamoDB. A store refuses with a type from storage/errors.py, and a
backend that keeps failing shows as chalicelib.errors.ServiceUnavailable.
The DynamoDB driver (storage/dynamodb.py) is a module per store, each one
matching its interface method for method (tests/test_storage_contract.py);
tests/contract is the contract's specification, run on every configuration.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from contextlib import AbstractContextManager


# A project's topics are queues stored for the project key `project +
# TOPIC_SPACE`, which no Keystone project id can be (it holds no "/"); see
# actions/topics.py.
TOPIC_SPACE = "/~topics"


# -- results ------------------------------------------------------------------

@dataclass
class Message:
    """A message as the actions see it."""
    id: str
    body: object
    ttl: int
    age: int
    claim_id: str | None = None
    claim_count: int = 0
    checksum: str | None = None
    client_id: str | None = None
    created: int | None = None  # epoch ms


@dataclass(frozen=True)
class Posted:
    """A message as the messages table's stream shows it posted."""
    pq: str  # its queue's key
    queue: str
    body: object
    ttl: int
    expires: int  # epoch ms
    delay: int  # seconds it was posted held for; 0 if none


@dataclass(frozen=True)
class QueueFacts:
    """What message requests need of a queue, and the queue's version they
    were read at: a store given them checks it where it reads or writes the
    queue's state anyway (StaleQueue if the queue changed since). None for
    facts read just now, which need no check."""
    metadata: dict
    floor: int  # the lowest position of this incarnation
    version: int | None
    # The pool URI its messages are at (storage/places.py); None: the stage's.
    location: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    """Where a message claimed `max_claims` times goes on its next claim."""
    project: str
    queue: str
    max_claims: int
    ttl: int | None = None  # the moved message's new ttl (s); None keeps its ttl


@dataclass
class Subscription:
    """A subscription as the actions see it."""
    id: str
    queue: str  # the queue's partition key, `project/queue`
    subscriber: str
    ttl: int
    expires: int  # epoch ms
    options: dict
    confirmed: bool
    failures: int = 0
    last_error: dict | None = None

    @property
    def source(self) -> str:
        return self.queue.rsplit("/", 1)[1]

    def age(self, now: int) -> int:
        """Seconds since it was created or its ttl was last set."""
        return max(0, (now - (self.expires - self.ttl * 1000)) // 1000)


@dataclass(frozen=True)
class Pending:
    """A delivery waiting for its next attempt, as notify sees it."""
    key: tuple[str, str]  # where it is stored
    due: int  # epoch ms
    queue: str  # the queue's partition key
    subscription_id: str
    payload: dict
    policy: dict  # the retry policy that applies
    attempts: int  # made so far
    last_error: str | None = None


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored: its id and keyed hash, never the key."""
    id: str
    digest: str
    project: str
    roles: frozenset[str]
    name: str
    created: int  # epoch ms
    expires: int | None = None  # epoch ms; None: never
    revoked: bool = False
    last_used: int | None = None  # epoch ms, at most a minute old when in use


@dataclass(frozen=True)
class Pool:
    """A place for queues' messages (storage/places.py), chosen by weight
    among its flavor's pools when a queue of that flavor is created."""
    name: str
    uri: str
    weight: int
    flavor: str | None = None
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Flavor:
    """A group of pools (those tagged with its name) a queue may ask for."""
    name: str
    capabilities: dict = field(default_factory=dict)


# -- one interface per resource -------------------------------------------------
# Each method names its result and what it raises besides ServiceUnavailable
# (which any of them may raise when the backend keeps failing).

class QueueStore(Protocol):
    def create(self, project: str, name: str, metadata: dict | None,
               pool: Pool | None = None) -> bool:
        """True if created; False, and nothing changed, if it exists."""

    def get_metadata(self, project: str, name: str) -> dict | None:
        """The stored metadata, or None for a missing queue."""

    def get_with_floor(self, project: str,
                       name: str) -> tuple[dict, int] | tuple[None, None]:
        """(metadata, floor: the lowest position of this incarnation), or
        (None, None) for a missing queue."""

    def facts(self, project: str, name: str, fresh: bool = False) -> QueueFacts | None:
        """The queue's QueueFacts as last read here (read now, strongly
        consistent and with no version to check, if `fresh`), or None for a
        queue not found."""

    def update_metadata(self, project: str, name: str,
                        change: Callable[[dict], dict]) -> dict | None:
        """The metadata `change` made of the stored one, written without
        losing a concurrent change; None for a missing queue. What `change`
        raises goes to the caller."""

    def delete(self, project: str, name: str) -> None:
        """Nothing; a missing queue is no error."""

    def list_page(self, project: str, marker: str | None = None, limit: int = 10,
                  name_filter: str | None = None,
                  match: Callable[[dict], bool] | None = None) -> list[tuple[str, dict]]:
        """[(name, metadata)] of up to `limit` queues after `marker`, by name."""

    def count(self, project: str) -> int:
        """How many queues the project has."""


class MessageStore(Protocol):
    def post(self, project: str, queue: str, messages: list[dict], client_id: str,
             enable_checksum: bool = False, version: int | None = None) -> list[str]:
        """The new ids, in posting order; all or nothing (ServiceUnavailable
        when the batch could not be written in time). StaleQueue, and nothing
        written, if the queue is not at `version` (None: no check)."""

    def get(self, project: str, queue: str, message_id: str) -> Message | None:
        """The live Message, or None (for any id, well formed or not)."""

    def get_many(self, project: str, queue: str,
                 message_ids: Iterable[str]) -> list[Message]:
        """The live Messages among these ids, in the order asked."""

    def delete_many(self, project: str, queue: str, message_ids: Iterable[str]) -> None:
        """Nothing; claims are ignored and unknown ids skipped."""

    def delete_queue_contents(self, project: str, queue: str) -> None:
        """Nothing; what a deleted queue leaves is unseen at once, removed later."""

    def purge(self, project: str, queue: str) -> None:
        """Nothing; every message of the queue is gone at once."""

    def posted_in(self, stream_record: dict) -> Posted | None:
        """The Posted message a stream record shows, or None for another change."""


class ListingStore(Protocol):
    def list_messages(self, project: str, queue: str, floor: int,
                      marker: str | None = None, limit: int = 10,
                      skip_client: str | None = None, include_claimed: bool = False,
                      include_delayed: bool = False, version: int | None = None,
                      ) -> tuple[list[Message], str | None]:
        """([Message], the next page's marker or None); StaleQueue if the
        queue is not at `version` (None: no check)."""


class ClaimStore(Protocol):
    def create(self, project: str, queue: str, floor: int, ttl: int, grace: int,
               limit: int, dead_letter: DeadLetter | None = None,
               version: int | None = None) -> tuple[str, list[Message]]:
        """(claim id, [Message]), oldest first; the list is empty when none was
        free. StaleQueue, and nothing taken, if the queue is not at `version`
        (None: no check)."""

    def get(self, project: str, queue: str,
            claim_id: str) -> tuple[int, int, list[Message]] | None:
        """(age s, ttl s, [Message]) of a live claim, or None."""

    def renew(self, project: str, queue: str, claim_id: str, ttl: int, grace: int) -> bool:
        """True if renewed; False if the claim is not live."""

    def release(self, project: str, queue: str, claim_id: str) -> None:
        """Nothing; the claim's messages are free at once. An ended claim is no error."""

    def delete_message(self, project: str, queue: str, message_id: str,
                       claim_id: str | None = None) -> None:
        """Nothing; raises ClaimNotFound, MessageNotClaimed or ClaimedByAnother
        when the message's claim forbids the delete."""

    def pop(self, project: str, queue: str, floor: int, limit: int,
            version: int | None = None) -> list[Message]:
        """The removed Messages, up to `limit`, oldest first; StaleQueue, and
        nothing removed, if the queue is not at `version` (None: no check)."""


class StatsStore(Protocol):
    def queue_stats(self, project: str, queue: str, floor: int,
                    ) -> tuple[dict[str, int], Message | None, Message | None]:
        """({"claimed", "delayed", "free", "total"}, oldest Message, newest
        Message); a message is None when there is none."""

    def message_total(self, project: str, queue: str, floor: int) -> int:
        """How many messages the queue (of this `floor`) holds, free, claimed
        or delayed, as queue_stats counts them (one query of two items,
        whatever the depth)."""

    def apply_stream_records(self, records: list[dict]) -> list[str]:
        """The sequence numbers to deliver again (a queue whose counters
        could not be written)."""


class SubscriptionStore(Protocol):
    def get(self, project: str, queue: str, subscription_id: str) -> Subscription | None:
        """The live Subscription, or None."""

    def get_by_key(self, pq: str, subscription_id: str) -> Subscription | None:
        """The live Subscription of the queue key `project/queue`, or None."""

    def list_page(self, project: str, queue: str, marker: str | None = None,
                  limit: int = 10) -> list[Subscription]:
        """Up to `limit` live Subscriptions after the id `marker`, in creation order."""

    def list_live(self, pq: str) -> list[Subscription]:
        """Every live Subscription of the queue key `project/queue`."""

    def create(self, project: str, queue: str, subscriber: str, ttl: int,
               options: dict) -> tuple[Subscription, bool]:
        """(the new Subscription, True), or (the subscriber's live one, False)."""

    def update(self, project: str, queue: str, subscription_id: str,
               subscriber: str | None = None, ttl: int | None = None,
               options: dict | None = None) -> Subscription | None:
        """The changed Subscription, or None if there is none; raises
        SubscriberTaken when another subscription has the new subscriber."""

    def confirm(self, project: str, queue: str, subscription_id: str,
                confirmed: bool) -> Subscription | None:
        """The Subscription, confirmed or not, or None if there is none."""

    def delete(self, project: str, queue: str, subscription_id: str) -> None:
        """Nothing; a missing subscription is no error."""

    def purge(self, project: str, queue: str) -> None:
        """Nothing; every subscription of the queue is gone."""

    def record_failure(self, pq: str, subscription_id: str, description: str) -> None:
        """Nothing; the failure is counted and kept as the last error."""

    def save_pending(self, queue: str, subscription_id: str, payload: dict, policy: dict,
                     attempts: int, last_error: str | None, due: int) -> None:
        """Nothing; the delivery waits until `due` (epoch ms)."""

    def pending_until(self, moment: int, limit: int = 100) -> list[Pending]:
        """Pending deliveries due by `moment` that no worker holds, earliest first."""

    def take_pending(self, pending: Pending, lease_ms: int) -> bool:
        """True if this worker now holds the delivery; False if another does."""

    def drop_pending(self, pending: Pending) -> None:
        """Nothing; the delivery is done with."""


class ConnectionStore(Protocol):
    def opened(self, connection_id: str) -> None:
        """Nothing; the websocket connection is known."""

    def bind(self, connection_id: str, project: str) -> bool:
        """True if the connection may act for `project` (the first one it named)."""

    def remember_subscription(self, connection_id: str, queue_name: str,
                              subscription_id: str, topic: bool = False) -> None:
        """Nothing; the subscription (of a topic, if `topic`) goes when the
        connection does."""

    def forget(self, connection_id: str) -> None:
        """Nothing; the connection and the subscriptions it made are gone."""


class KeyStore(Protocol):
    def create(self, key: ApiKey) -> bool:
        """True if stored; False, and nothing changed, if its id is taken."""

    def get(self, key_id: str) -> ApiKey | None:
        """The ApiKey, revoked or expired ones included, or None."""

    def list_project(self, project: str) -> list[ApiKey]:
        """Every ApiKey of the project, revoked and expired ones included,
        oldest first."""

    def revoke(self, key_id: str) -> bool:
        """True if the key is revoked now (or was); False if there is none."""

    def record_use(self, key_id: str, now: int, every_ms: int) -> None:
        """Nothing; last_used becomes `now` unless it is within `every_ms`
        of it already (then nothing is written)."""


class PoolStore(Protocol):
    def create(self, pool: Pool) -> bool:
        """False (and nothing changed) if a pool of that name exists."""

    def get(self, name: str) -> Pool | None: ...

    def list_page(self, marker: str | None = None, limit: int = 10) -> list[Pool]:
        """Up to `limit` pools after `marker`, by name."""

    def every(self) -> list[Pool]:
        """All the pools, by name (they are few)."""

    def update(self, name: str, uri: str | None = None, weight: int | None = None,
               options: dict | None = None) -> Pool | None:
        """The pool with the fields given changed (None: kept); None if missing."""

    def tag(self, name: str, flavor: str | None, only_if: str | None = None) -> bool:
        """Set the pool's flavor (None: untag it); with only_if, only while it
        is tagged with that flavor. False if missing (or tagged otherwise)."""

    def in_flavor(self, flavor: str) -> list[Pool]:
        """The pools tagged with `flavor`, by name."""

    def delete(self, name: str, flavor: str | None) -> bool:
        """Delete the pool if still tagged with `flavor` (as read); False if not."""

    def uri_problem(self, uri: str) -> str | None:
        """Why `uri` names no place for a pool (storage/places.py); None if it does."""

    def reachable(self, uri: str) -> bool:
        """Whether the place's messages table answers (storage/places.py)."""

    def at(self, uri: str | None) -> AbstractContextManager[None]:
        """Storage at the place `uri` names inside the block (None: the stage's)."""

    def of_stream(self, stream_arn: str) -> str | None:
        """The URI of the pool whose messages table feeds `stream_arn`; None
        for the stage's own table (and one no pool names)."""


class FlavorStore(Protocol):
    def save(self, flavor: Flavor) -> None:
        """Create the flavor, or replace it."""

    def get(self, name: str) -> Flavor | None: ...

    def list_page(self, marker: str | None = None, limit: int = 10) -> list[Flavor]:
        """Up to `limit` flavors after `marker`, by name."""

    def delete(self, name: str) -> None: ...


@dataclass(frozen=True)
class Driver:
    """One store per resource, all on one backend configuration."""
    queues: QueueStore
    messages: MessageStore
    listing: ListingStore
    claims: ClaimStore
    stats: StatsStore
    subscriptions: SubscriptionStore
    connections: ConnectionStore
    keys: KeyStore
    pools: PoolStore
    flavors: FlavorStore

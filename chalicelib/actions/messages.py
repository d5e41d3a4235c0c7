"""Message actions, shared by the REST and websocket transports."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from chalicelib import telemetry
from chalicelib.actions import on_its_pool, quotas, storage
from chalicelib.errors import BadRequest, Forbidden, NotFound
from chalicelib.storage.errors import (
    ClaimedByAnother,
    ClaimNotFound,
    MessageNotClaimed,
    StaleQueue,
)
from chalicelib.validation import check_limit, check_queue_name, validate

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from chalicelib.config import Settings
    from chalicelib.storage.base import Message, QueueFacts
    from chalicelib.validation import Context

    T = TypeVar("T")


def load_queue(ctx: Context, queue_name: str,
               create: bool = False) -> tuple[dict | None, int | None]:
    """(metadata, floor) of the queue; with create, a missing queue is created
    first, as Zaqar does on a post. (None, None) if missing otherwise."""
    queues = storage(ctx).queues
    metadata, floor = queues.get_with_floor(ctx.project, queue_name)
    if metadata is None and create:
        quotas.check_new_queue(ctx)
        queues.create(ctx.project, queue_name, {})
        metadata, floor = queues.get_with_floor(ctx.project, queue_name)
    return metadata, floor


def on_queue(ctx: Context, queue_name: str,
             operation: Callable[[QueueFacts | None], T]) -> T:
    """operation(facts) with the queue's facts as last read here (None: no
    such queue), and once more with facts read afresh if the store found the
    queue changed since, or if the request was refused on facts kept (its
    limits may have changed): a warm function does not read the queue's item
    on every message request (see storage.queues)."""
    driver = storage(ctx)

    def on(facts):
        with driver.pools.at(facts.location if facts else None):
            return operation(facts)

    facts = driver.queues.facts(ctx.project, queue_name)
    try:
        return on(facts)
    except (StaleQueue, BadRequest):
        if facts is None or facts.version is None:
            raise  # refused on facts read just now
        return on(driver.queues.facts(ctx.project, queue_name, fresh=True))


def check_post_size(size: int, metadata: dict | None, settings: Settings) -> None:
    """Zaqar's size check, on the request's length: a queue's own limit is
    capped by the config's, and its error names both."""
    limit = settings.max_messages_post_size
    queue_limit = (metadata or {}).get("_max_messages_post_size")
    if queue_limit and isinstance(queue_limit, int) and size > min(queue_limit, limit):
        raise BadRequest(
            "Message collection size is too large. The max size for current "
            f"queue is {min(queue_limit, limit)}. It is calculated by max size = "
            f"min(max_messages_post_size_config: {limit}, "
            f"max_messages_post_size_queue: {queue_limit}).")
    if size > limit:
        raise BadRequest(f"Message collection size is too large. Max size {limit}")


def without_delays(document: object) -> object:
    """The post without its messages' `delay` fields: on a queue without a
    default delay Zaqar drops them unchecked."""
    messages = document.get("messages") if isinstance(document, dict) else None
    if not isinstance(messages, list):
        return document
    return dict(document, messages=[
        {key: value for key, value in message.items() if key != "delay"}
        if isinstance(message, dict) else message for message in messages])


@on_its_pool
def post(ctx: Context, queue_name: str, document: object,
         size: int | None = None) -> list[str]:
    """Post a batch; returns the new ids in posting order.

    `size` is the request body's length in bytes (the serialized document if
    not given). Only body, ttl and (on queues with a default delay) delay are
    kept of each message.
    """
    check_queue_name(queue_name)
    settings = ctx.settings
    size = len(json.dumps(document).encode()) if size is None else size

    def post_on(facts):
        metadata = facts.metadata if facts else None
        check_post_size(size, metadata, settings)
        default_delay = (metadata or {}).get("_default_message_delay") or 0
        checked = document if default_delay else without_delays(document)
        validate("messages_post", checked, settings)
        quotas.check_new_messages(ctx, queue_name, len(checked["messages"]), facts)
        version = facts.version if facts else None
        if metadata is None:
            # Created only once the post is known to be good: a bad one
            # changes nothing. Its facts are read just now: no version to check.
            metadata, _ = load_queue(ctx, queue_name, create=True)
        default_ttl = metadata.get("_default_message_ttl") or settings.default_message_ttl
        batch = []
        for message in checked["messages"]:
            kept = {"body": message["body"], "ttl": message.get("ttl", default_ttl)}
            if default_delay:
                kept["delay"] = message.get("delay", default_delay)
            batch.append(kept)
        return storage(ctx).messages.post(ctx.project, queue_name, batch, ctx.client_id,
                                          enable_checksum=settings.enable_checksum,
                                          version=version)
    ids = on_queue(ctx, queue_name, post_on)
    telemetry.count(telemetry.MESSAGES_POSTED, len(ids))
    return ids


@on_its_pool
def list_messages(ctx: Context, queue_name: str, marker: str | None = None,
                  limit: int | None = None, echo: bool = False,
                  include_claimed: bool = False, include_delayed: bool = False,
                  ) -> tuple[list[Message], str | None, bool]:
    """A page of messages: ([Message], next marker or None, include_delayed as
    applied: it is forced on for queues without a default delay)."""
    check_queue_name(queue_name)
    limit = 10 if limit is None else limit
    check_limit(limit, ctx.settings.max_messages_per_page, "may not be greater than")

    def page_of(facts):
        if facts is None:
            return [], None, True
        # Zaqar forces include_delayed on for a queue without a default delay.
        # Such a queue holds no delayed message (a delay is dropped there), so
        # storage is asked for free messages only: that view reads from the
        # claim cursor, not through every held message.
        delay_queue = bool(facts.metadata.get("_default_message_delay"))
        found, last = storage(ctx).listing.list_messages(
            ctx.project, queue_name, facts.floor, marker=marker, limit=limit,
            skip_client=None if echo else ctx.client_id,
            include_claimed=include_claimed,
            include_delayed=include_delayed and delay_queue, version=facts.version)
        return found, last, include_delayed or not delay_queue
    return on_queue(ctx, queue_name, page_of)


@on_its_pool
def get(ctx: Context, queue_name: str, message_id: str) -> Message:
    check_queue_name(queue_name)
    message = storage(ctx).messages.get(ctx.project, queue_name, message_id)
    if message is None:
        raise NotFound(f"Message {message_id} does not exist in queue "
                       f"{queue_name} for project {ctx.project}")
    return message


@on_its_pool
def get_many(ctx: Context, queue_name: str, message_ids: list[str]) -> list[Message]:
    check_queue_name(queue_name)
    check_limit(len(message_ids), ctx.settings.max_messages_per_page,
                "may not be greater than")
    found = storage(ctx).messages.get_many(ctx.project, queue_name, message_ids)
    if not found:
        # The ids are shown as Zaqar shows them: a Python list.
        raise NotFound(f"No messages with IDs: {list(message_ids)} found in "
                       f"the queue {queue_name} for project {ctx.project}.")
    return found


@on_its_pool
def delete(ctx: Context, queue_name: str, message_id: str,
           claim_id: str | None = None) -> None:
    check_queue_name(queue_name)
    try:
        storage(ctx).claims.delete_message(ctx.project, queue_name, message_id, claim_id)
    except ClaimNotFound:
        raise BadRequest("The specified claim does not exist or has expired.",
                         title="Unable to delete")
    except MessageNotClaimed:
        raise BadRequest("A claim was specified, but the message is not "
                         "currently claimed.", title="Unable to delete")
    except ClaimedByAnother:
        raise Forbidden("This message is claimed; it cannot be deleted without "
                        "a valid claim ID.", title="Unable to delete")
    telemetry.count(telemetry.MESSAGES_DELETED)


@on_its_pool
def delete_many(ctx: Context, queue_name: str, message_ids: list[str],
                claim_ids: list[str] | None = None) -> None:
    check_queue_name(queue_name)
    maximum = ctx.settings.max_messages_per_page
    if not 0 < len(message_ids) <= maximum:
        raise BadRequest(f"ids parameter should have at least 1 and not greater "
                         f"than {maximum} values.")
    if ctx.settings.message_delete_with_claim_id and not claim_ids:
        raise BadRequest("The request should have claim_ids parameter when "
                         "message_delete_with_claim_id is enabled.")
    storage(ctx).messages.delete_many(ctx.project, queue_name, message_ids)
    # As asked: storage skips unknown ids without telling which.
    telemetry.count(telemetry.MESSAGES_DELETED, len(message_ids))


@on_its_pool
def delete_or_pop(ctx: Context, queue_name: str, ids: list[str] | None = None,
                  pop: int | None = None,
                  claim_ids: list[str] | None = None) -> list[Message] | None:
    """A bulk delete names either ids or how many to pop, never both: the
    popped messages, or None after deleting by ids."""
    if ids is not None and pop is not None:
        raise BadRequest("pop and id params cannot be present together in the "
                         "delete request.")
    if ids is None and pop is None:
        raise BadRequest('The request should have either "ids" or "pop" parameter '
                         "in the request, to be able to delete.")
    if pop is not None:
        return pop_messages(ctx, queue_name, pop)
    delete_many(ctx, queue_name, ids, claim_ids)
    return None


@on_its_pool
def pop_messages(ctx: Context, queue_name: str, count: int) -> list[Message]:
    """Remove and return up to `count` free messages, oldest first."""
    check_queue_name(queue_name)
    maximum = ctx.settings.max_messages_per_claim_or_pop
    if not 0 < count <= maximum:
        raise BadRequest(f"Pop value must be at least 1 and may not be greater "
                         f"than {maximum}.")

    def pop_on(facts):
        if facts is None:
            return []
        return storage(ctx).claims.pop(ctx.project, queue_name, facts.floor, count,
                                       version=facts.version)
    popped = on_queue(ctx, queue_name, pop_on)
    telemetry.count(telemetry.MESSAGES_DELETED, len(popped))
    return popped

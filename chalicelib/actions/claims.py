"""Claim actions, shared by the REST and websocket transports."""
from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib import telemetry
from chalicelib.actions import on_its_pool, storage
from chalicelib.actions.messages import on_queue
from chalicelib.errors import InvalidBody, NotFound
from chalicelib.storage.base import DeadLetter
from chalicelib.validation import check_limit, check_queue_name, validate

if TYPE_CHECKING:
    from chalicelib.storage.base import Message, QueueFacts
    from chalicelib.validation import Context


def _not_found(ctx, queue_name, claim_id):
    return NotFound(f"Claim {claim_id} does not exist in queue {queue_name} "
                    f"for project {ctx.project}")


@on_its_pool
def create(ctx: Context, queue_name: str, document: object = None,
           limit: int | None = None) -> tuple[str | None, list[Message]]:
    """Claim messages: (claim_id, [Message]); the list is empty if none was free."""
    check_queue_name(queue_name)
    settings = ctx.settings
    document = {} if document is None else document
    validate("claim_create", document, settings)
    limit = 10 if limit is None else limit
    check_limit(limit, settings.max_messages_per_claim_or_pop, "may not be greater than")

    def claim_on(facts):
        if facts is None:
            return None, []
        return storage(ctx).claims.create(
            ctx.project, queue_name, facts.floor,
            ttl=document.get("ttl", settings.default_claim_ttl),
            grace=document.get("grace", settings.default_claim_grace), limit=limit,
            dead_letter=dead_letter_of(ctx, facts), version=facts.version)
    claim_id, taken = on_queue(ctx, queue_name, claim_on)
    telemetry.count(telemetry.MESSAGES_CLAIMED, len(taken))
    return claim_id, taken


def dead_letter_of(ctx: Context, facts: QueueFacts) -> DeadLetter | None:
    """The queue's dead-letter settings; they act only when both the queue and
    the claim count are set, as in Zaqar, and (on a pooling stage) when the
    dead-letter queue's messages are on the same pool as the queue's, as
    Zaqar asks: a message is moved within its table."""
    metadata = facts.metadata
    queue, max_claims = metadata.get("_dead_letter_queue"), metadata.get("_max_claim_count")
    if not queue or not isinstance(max_claims, int) or max_claims < 1:
        return None
    if ctx.settings.pooling:
        dead_letters = storage(ctx).queues.facts(ctx.project, queue)
        if (dead_letters.location if dead_letters else None) != facts.location:
            return None
    return DeadLetter(ctx.project, queue, max_claims,
                      metadata.get("_dead_letter_queue_messages_ttl") or None)


@on_its_pool
def get(ctx: Context, queue_name: str, claim_id: str) -> tuple[int, int, list[Message]]:
    """(age, ttl, [Message]) of a live claim."""
    check_queue_name(queue_name)
    found = storage(ctx).claims.get(ctx.project, queue_name, claim_id)
    if found is None:
        raise _not_found(ctx, queue_name, claim_id)
    return found


@on_its_pool
def update(ctx: Context, queue_name: str, claim_id: str, document: object) -> None:
    check_queue_name(queue_name)
    if document is None:
        raise InvalidBody("Request body can not be empty")
    validate("claim_update", document, ctx.settings)
    renewed = storage(ctx).claims.renew(
        ctx.project, queue_name, claim_id,
        ttl=document.get("ttl", ctx.settings.default_claim_ttl),
        grace=document.get("grace", ctx.settings.default_claim_grace))
    if not renewed:
        raise _not_found(ctx, queue_name, claim_id)


@on_its_pool
def delete(ctx: Context, queue_name: str, claim_id: str) -> None:
    check_queue_name(queue_name)
    storage(ctx).claims.release(ctx.project, queue_name, claim_id)

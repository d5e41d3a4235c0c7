"""Listing messages, oldest first, with Zaqar's filters.

The default view (free messages only) reads like a claimer does (see
claims.py): the free messages of due timers, then from the cursor on, so held
messages are not read. Views that include held messages read the queue in
order from the marker.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib import clock
from chalicelib.storage import claims
from chalicelib.storage.messages import position_of, scan, to_message
from chalicelib.storage.models import CLAIM_PREFIX, queue_key

if TYPE_CHECKING:
    from chalicelib.storage.base import Message

MOST_READ_PER_PAGE = 1000


def list_messages(project: str, queue: str, floor: int, marker: str | None = None,
                  limit: int = 10, skip_client: str | None = None,
                  include_claimed: bool = False, include_delayed: bool = False,
                  version: int | None = None) -> tuple[list[Message], str | None]:
    """A page: ([Message], next marker or None).

    `marker` is the id of the last message of the previous page; messages
    posted by `skip_client` are left out (echo off). The next marker is the
    last message read, which may lie past the last one returned when a page
    reads its limit of records without filling up. StaleQueue if the queue
    is not at `version` (None: no check).
    """
    pq = queue_key(project, queue)
    now = clock.now_ms()
    after = position_of(marker) if marker else None
    if marker and after is None:
        return [], None  # a bogus marker gives an empty page, as in Zaqar
    start = max(floor, after + 1 if after is not None else 0)

    state = claims.load_state(pq)
    claims.check_version(state, version)
    _, unfinished = claims.unfinished_batches(state, now)

    def wanted(record):
        if record.expires <= now or position_of(record.message_id) < floor:
            return False
        if record.batch_token in unfinished:
            return False
        if skip_client is not None and record.client_id == skip_client:
            return False
        held_until = record.claim_expires or 0
        if held_until > now:
            claimed = record.claim_id is not None
            return include_claimed if claimed else include_delayed
        return True

    if include_claimed or include_delayed:
        found, last = _scan(pq, start, limit, wanted)
        return [to_message(record, now) for record in found], last

    scan_from = max(start, state.cursor or 0)
    # Released messages below the scan's start come first; the scan reads the
    # others itself (a due timer may name messages the cursor has not passed,
    # and several timers may name the same message).
    released = {}
    timers = claims.due_timers(pq, state.checked or CLAIM_PREFIX, now)
    for _, records in claims.released_by_timers(pq, timers, now, floor, unfinished):
        released.update((position_of(record.message_id), record) for record in records
                        if wanted(record)
                        and start <= position_of(record.message_id) < scan_from)
    released = [record for _, record in sorted(released.items())]
    found, last = released[:limit], None
    if len(found) < limit:
        scanned, last = _scan(pq, scan_from, limit - len(found), wanted)
        found += scanned
    if found and (last is None or len(found) == limit):
        last = found[-1].message_id
    return [to_message(record, now) for record in found], last


def _scan(pq, start, limit, wanted):
    """Records from `start` on that pass `wanted`, up to `limit`; and the id of
    the last record read."""
    found, last, read = [], None, 0
    for record in scan(pq, start, page_size=min(100, 2 * limit + 5)):
        last, read = record.message_id, read + 1
        if wanted(record):
            found.append(record)
        if len(found) >= limit or read >= MOST_READ_PER_PAGE:
            break
    return found, last


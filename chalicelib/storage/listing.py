"""Listing messages, oldest first, with Zaqar's filters.

The default view (free messages only) reads like a claimer does (see
claims.py): the free messages of due timers, then from the cursor on, so held
messages are not read. Views that include held messages read the queue in
order from the marker.

A listing that leaves out the caller's own messages (echo off) passes the
caller's runs (see messages.reserve_run) without reading them: the queue's
latest run, from the state it reads anyway, and earlier runs from their
items, read once a listing meets a streak of the caller's own messages. So
what it costs does not grow with how many of them lie at the head.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib import clock
from chalicelib.storage import claims
from chalicelib.storage.messages import message_id_of, position_of, run_key, scan, to_message
from chalicelib.storage.models import CLAIM_PREFIX, RUN_PREFIX, RunRecord, queue_key
from chalicelib.storage.retry import retrying

if TYPE_CHECKING:
    from chalicelib.storage.base import Message
    from chalicelib.storage.models import QueueState

MOST_READ_PER_PAGE = 1000
LAST_POSITION = 2 ** 64 - 1
# Own messages read in a row before the caller's earlier runs are looked up.
OWN_STREAK = 10
# Runs shorter than this are read through: passing one costs a request.
SHORTEST_PASSED = 10
RUNS_PER_READ = 100


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

    own = OwnRuns(pq, skip_client, state)
    if include_claimed or include_delayed:
        found, last = _scan(pq, start, limit, wanted, own)
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
        scanned, last = _scan(pq, scan_from, limit - len(found), wanted, own)
        found += scanned
    if found and (last is None or len(found) == limit):
        last = found[-1].message_id
    return [to_message(record, now) for record in found], last


class OwnRuns:
    """Ranges of positions `client` reserved (None: no client's are left
    out), known without reading the messages."""

    def __init__(self, pq: str, client: str | None, state: QueueState) -> None:
        self.pq, self.client = pq, client
        self.looked_up = client is None
        self.ranges: list[tuple[int, int]] = []
        # Past the counter as read, nothing was reserved when the state was.
        self.counter = int(state.counter or 0)
        if client is not None and state.run_client == client and state.run_start:
            self._add(int(state.run_start), self.counter)

    def _add(self, start: int, end: int) -> None:
        if end - start + 1 >= SHORTEST_PASSED:
            self.ranges = sorted({*self.ranges, (start, end)})

    def end_of(self, position: int) -> int | None:
        """The last position of the run that holds `position`, if known."""
        return next((end for start, end in self.ranges if start <= position <= end), None)

    def next_start(self, position: int) -> int | None:
        """Where the next known run after `position` starts."""
        return next((start for start, _ in self.ranges if start > position), None)

    def look_up(self, position: int) -> bool:
        """Read the client's runs that end at or after `position` (once);
        whether that taught anything. Eventually consistent: a run item not
        seen yet only leaves its positions to be read."""
        if self.looked_up:
            return False
        self.looked_up, before = True, list(self.ranges)
        for run in retrying(lambda: list(RunRecord.query(
                self.pq, RunRecord.sk.between(run_key(position), run_key(LAST_POSITION)),
                limit=RUNS_PER_READ, page_size=RUNS_PER_READ))):
            if run.client_id == self.client:
                self._add(int(run.start), position_of(run.sk[len(RUN_PREFIX):]))
        return self.ranges != before


def _scan(pq, start, limit, wanted, own):
    """Records from `start` on that pass `wanted`, up to `limit`, passing the
    caller's own runs (`own`); and the id of the last position read or
    passed."""
    found, last, read, position = [], None, 0, start
    while len(found) < limit and read < MOST_READ_PER_PAGE:
        end = own.end_of(position)
        if end is not None:  # an own run: passed, not read
            last, position = message_id_of(end), end + 1
            if end >= own.counter:
                break  # nothing was reserved after it
            continue
        upto = own.next_start(position)
        streak, learned = 0, False
        for record in scan(pq, position, end=LAST_POSITION if upto is None else upto - 1,
                           page_size=min(100, 2 * (limit - len(found)) + 5)):
            last, read = record.message_id, read + 1
            position = position_of(last) + 1
            if wanted(record):
                found.append(record)
            if len(found) >= limit or read >= MOST_READ_PER_PAGE:
                break
            streak = streak + 1 if record.client_id == own.client else 0
            if streak >= OWN_STREAK and own.look_up(position):
                learned = True
                break
        else:  # read up to the next own run, or to the end
            if upto is None:
                break
            position = upto
            continue
        if not learned:
            break
    return found, last

"""Claims: exclusive holds on messages, taken by conditional writes.

A message is held while its claim expiry `ce` lies in the future (a claim, or
a delay). Taking it is one UpdateItem whose condition is "not held, not
expired": whatever the concurrency, one claimer wins; a loser moves on to the
next candidate.

Finding candidates must not cost more as held messages pile up, so claimers do
not filter-scan the queue. They keep two hints in the queue's state item:

* `cursor`: no message below it is free, unless a pending timer covers it.
  Claimers read from the cursor, take what is free and move the cursor past
  what they have seen held, taken, expired or deleted. A gap (a reserved
  position not written yet) stops it until the post must have landed; the
  claimers read on past it, though (`ahead`), and read the few gaps it waits
  at (`gaps`) on each claim, so free messages behind a young gap and many
  held ones are still found.
* `checked`: timers up to it are handled. Every hold has a timer that falls
  due when the hold may end: the claim record itself (keyed by its original
  expiry), one per renewal and release, one per delayed post. A claimer first
  takes free messages from the timers that fell due, then reads at the cursor.

Both hints are advanced by one conditional write, and only by a claimer that
saw the state it is changing; a stale hint only costs a few extra reads. So a
claim reads about what it takes, and writes one item per message, one claim
record and one state update.

Concurrent claimers read the same cursor, so they would race for the same
oldest messages, and every lost race is a billed write. A claimer that loses
one stops trying there and takes the rest from a window; while claimers are
seen contending, each one takes a window of positions, as many as it needs,
with an atomic ADD on the state item (which also reads it: a function that
saw contention lately sends it without reading the state first), and reads
only that window (skipping positions costs nothing: they are keys), after
the timers. Windows are disjoint; when they have fallen behind the cursor
they start again at it. A claimer notes the windows it has done on the state
item with its one unconditional write (`done`); the cursor moves through a
run of them once every window below is done, by the claimer that completes
it (or one that finds six done in a row), and claimers read from the end of
that run. A lone claimer takes no window: always the oldest.
"""
from __future__ import annotations

import random
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from pynamodb.exceptions import DeleteError, DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib import clock, telemetry
from chalicelib.storage import queues as queue_store
from chalicelib.storage.base import DeadLetter
from chalicelib.storage.errors import ClaimedByAnother, ClaimNotFound, MessageNotClaimed
from chalicelib.storage.messages import (
    HOLD_BUCKET_MS,
    TIMER_KEEP_S,
    add_holds,
    check_version,
    delete_positions,
    get_records,
    hex_number,
    hold_key,
    is_free,
    load_state,
    message_id_of,
    position_key,
    position_of,
    reserve_positions,
    scan,
    to_message,
    unfinished_batches,
    update_creating_maps,
)
from chalicelib.storage.models import (
    CLAIM_PREFIX,
    STATE_KEY,
    ClaimRecord,
    MessageRecord,
    QueueState,
    queue_key,
)
from chalicelib.storage.parallel import in_parallel
from chalicelib.storage.retry import condition_failed, retrying

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from chalicelib.storage.base import Message

# Every post lands within this long of reserving its positions: it aborts
# itself after 10 s (messages.POST_ABORT_MS) and Lambda stops it at 30 s.
POST_WINDOW_MS = 30_000
MOST_READ_PER_CLAIM = 1000
MOST_TIMERS_PER_CLAIM = 100
# A claim reads a few more candidates than it needs, so that losing races to
# other claimers rarely costs another round (and another claim-record write).
CANDIDATE_MARGIN = 5
CLAIM_ROUNDS = 3
# What choosing and taking a candidate reads of it; a take's answer (the
# whole item, as updated) brings the rest.
CANDIDATE_ATTRIBUTES = [MessageRecord.pq, MessageRecord.sk, MessageRecord.message_id,
                        MessageRecord.created, MessageRecord.expires, MessageRecord.ttl,
                        MessageRecord.claim_id, MessageRecord.claim_expires,
                        MessageRecord.claim_count, MessageRecord.batch_token]
# Young gaps the cursor may wait at while claimers read on past them.
MOST_GAPS = 10
# Windows done above the cursor that the state holds at most, and how many
# in a row from the cursor a claimer moves it through with a write of its own.
MOST_DONE = 16
FOLD_DONE = 6
# Claimers take windows this long after contention was last seen.
CONTENTION_MS = 10_000
# When claimers were last seen contending on a queue, as this function last
# read it (the least recently used queues dropped first): while that is
# recent, a claim takes its window without reading the state first.
CONTENDED_QUEUES = 1000
_contended: OrderedDict[tuple[str, str], int] = OrderedDict()
_contended_lock = threading.Lock()


def new_claim_id(expires: int) -> str:
    """Claim ids start with their original expiry, so claim records sort by it."""
    return f"{expires:012x}{random.getrandbits(32):08x}"


def is_claim_id(text: object) -> bool:
    return hex_number(text, 20) is not None


def claim_key(claim_id: str) -> str:
    return CLAIM_PREFIX + claim_id


def load_claim(pq: str, claim_id: str) -> ClaimRecord | None:
    if not is_claim_id(claim_id):
        return None
    try:
        return retrying(ClaimRecord.get, pq, claim_key(claim_id), consistent_read=True)
    except DoesNotExist:
        return None


def live_claim(project: str, queue: str, claim_id: str,
               now: int | None = None) -> ClaimRecord | None:
    """The claim record, if the claim has not ended and belongs to the queue
    now under this name (a deleted queue's claims end with it)."""
    record = load_claim(queue_key(project, queue), claim_id)
    now = clock.now_ms() if now is None else now
    if record is None or record.expires <= now:
        return None
    _, floor = queue_store.get_with_floor(project, queue)
    if floor is None or any(position < floor for position in record.positions):
        return None
    return record


def is_live(project: str, queue: str, claim_id: str) -> bool:
    return live_claim(project, queue, claim_id) is not None


def _records_at(pq, positions):
    """The message records at these positions (strongly consistent)."""
    positions = sorted(set(positions))
    if not positions:
        return []
    low, high = positions[0], positions[-1]
    if high - low + 1 > 2 * len(positions):
        found = get_records(pq, positions)
        return [found[p] for p in positions if p in found]
    wanted = set(positions)
    in_range = retrying(lambda: list(MessageRecord.query(
        pq, MessageRecord.sk.between(position_key(low), position_key(high)),
        consistent_read=True)))
    return [record for record in in_range if position_of(record.message_id) in wanted]


def _hold(record, claim_id, expires, grace_s, ttl_s):
    """The update that puts a message under a claim until `expires`."""
    stretched = expires + grace_s * 1000
    actions = [MessageRecord.claim_id.set(claim_id),
               MessageRecord.claim_expires.set(expires)]
    if record.expires < stretched:
        # A claimed message lives at least until its claim ends plus grace.
        actions += [MessageRecord.expires.set(stretched),
                    MessageRecord.ttl.set(ttl_s + grace_s),
                    MessageRecord.expires_at.set(stretched // 1000 + 1)]
    return actions


def due_timers(pq: str, checked: str, now: int,
               limit: int = MOST_TIMERS_PER_CLAIM) -> list[ClaimRecord]:
    """Timers after `checked` that are due by `now`, in due order."""
    upper = f"{CLAIM_PREFIX}{now:012x}ffffffff"
    if checked >= upper:
        return []
    timers = retrying(lambda: list(ClaimRecord.query(
        pq, ClaimRecord.sk.between(checked, upper), consistent_read=True,
        page_size=25, limit=limit + 1)))
    return [timer for timer in timers if timer.sk != checked][:limit]


def released_by_timers(pq: str, timers: Iterable[ClaimRecord], now: int, floor: int,
                       unfinished: frozenset[str] = frozenset(),
                       ) -> Iterator[tuple[ClaimRecord, list[MessageRecord]]]:
    """For each due timer: the free messages it covers, oldest first.

    The messages of all the timers are read at once. A timer whose hold has
    not ended (its claim was renewed; a later timer covers it) finds them
    still held, which is all that reading its claim record would have told.
    """
    timers = list(timers)
    free = {position_of(record.message_id): record
            for record in _records_at(pq, [p for timer in timers for p in timer.positions])
            if is_free(record, now, floor, unfinished)}
    for timer in timers:
        yield timer, [free[p] for p in sorted(set(timer.positions)) if p in free]


def _free_condition(now):
    return (MessageRecord.message_id.exists()
            & (MessageRecord.claim_expires.does_not_exist()
               | (MessageRecord.claim_expires <= now))
            & (MessageRecord.expires > now))


def move_to_dead_letter(record: MessageRecord, dead_letter: DeadLetter, now: int) -> bool:
    """Move a free message into the dead-letter queue in one transaction, so it
    is never in both queues nor in neither. False if it was not free any more.

    It gets a position (so an id) of the dead-letter queue and a fresh life
    there; body, client id and claim count go with it, and no claim: it is
    visible there at once.
    """
    target = queue_key(dead_letter.project, dead_letter.queue)
    if queue_store.get_with_floor(dead_letter.project, dead_letter.queue)[0] is None:
        queue_store.create(dead_letter.project, dead_letter.queue, {})
    position = retrying(reserve_positions, target, 1)
    ttl = dead_letter.ttl or int(record.ttl)
    moved = MessageRecord(
        target, position_key(position), message_id=message_id_of(position),
        body=record.body, ttl=ttl, created=now, expires=now + ttl * 1000,
        expires_at=(now + ttl * 1000) // 1000 + 1, client_id=record.client_id,
        claim_count=record.claim_count, checksum=record.checksum)
    # The table's own connection: a new one per move would cost a TLS set-up.
    connection = MessageRecord._get_connection().connection

    def transact():
        with TransactWrite(connection=connection) as transaction:
            transaction.delete(record, condition=_free_condition(now))
            transaction.save(moved, condition=MessageRecord.sk.does_not_exist())
    try:
        retrying(transact)
    except TransactWriteError as exc:
        reasons = [reason.code for reason in (exc.cancellation_reasons or []) if reason]
        if "ConditionalCheckFailed" in reasons:
            return False
        raise
    return True


class Claimer:
    """One claim request: finds free messages and takes up to `limit`.

    It reads candidates first, writes the claim record naming them all (so
    whatever it then takes is covered by a timer, even if it dies half-way or
    a response is lost), takes them oldest first, and only then moves the
    hints past what it dealt with.
    """

    def __init__(self, pq: str, floor: int, ttl: int, grace: int, limit: int, now: int,
                 dead_letter: DeadLetter | None = None, counted: bool = True,
                 version: int | None = None) -> None:
        self.pq, self.floor, self.limit, self.now = pq, floor, limit, now
        self.version = version  # of the queue's facts the caller gave
        self.ttl, self.grace = ttl, grace
        self.expires = now + ttl * 1000
        self.claim_id = new_claim_id(self.expires)
        self.dead_letter = dead_letter
        self.counted = counted  # a pop holds messages only to delete them
        self.taken = []
        self.tried = set()  # positions this claim has tried to take
        self.lost = 0  # races lost to other claimers
        self.recorded = False
        # Batch tokens of posts still writing, and of all uncommitted posts.
        self.writing = self.unfinished = frozenset()
        self.counter = 0  # the last position reserved when the state was read
        self.seen = []  # (from, to): ranges read with nothing free left untried
        # Tokens of posts past their deadline whose messages the cursor would
        # pass: the move holds only while they are still uncommitted.
        self.abandoned = set()
        # Young gaps the cursor waits at (position -> deadline) and where to
        # read on from, as the state has them; gaps met reading, and what
        # the listed ones hold now (None: still not written).
        self.gaps, self.ahead = {}, None
        self.new_gaps = {}
        self.gap_records = None
        self.timers_read = False  # once per claim: the first round takes what they release
        self.windows = []  # (from, to): windows read, with nothing free left untried

    def saw(self, state: QueueState) -> None:
        """Note the posts the queue's state lists as unfinished, and how far
        positions were reserved: a batch reserved later is not listed."""
        self.writing, self.unfinished = unfinished_batches(state, self.now)
        self.counter = int(state.counter or 0)
        cursor = max(state.cursor or 0, self.floor)
        gaps = state.gaps.as_dict() if state.gaps is not None else {}
        self.gaps = {int(position, 16): int(deadline) for position, deadline in gaps.items()
                     if int(position, 16) >= cursor}
        self.ahead = int(state.ahead) if (state.ahead or 0) > cursor else None

    def unlisted_batch(self, record: MessageRecord) -> bool:
        """Whether the message is of a batch reserved after the state was
        read: it may not have committed, and must be neither taken nor passed
        (its post would then fail to commit and take it back)."""
        return (record.batch_token is not None
                and position_of(record.message_id) > self.counter)

    @property
    def full(self) -> bool:
        return len(self.taken) >= self.limit

    def take(self, record: MessageRecord) -> bool:
        """Try to hold one free message; False if another claimer had it. A
        message claimed too often goes to the dead-letter queue instead."""
        self.tried.add(position_of(record.message_id))
        if (self.dead_letter is not None
                and (record.claim_count or 0) >= self.dead_letter.max_claims):
            moved = move_to_dead_letter(record, self.dead_letter, self.now)
            telemetry.count(telemetry.MESSAGES_DEAD_LETTERED, int(moved))
            return moved
        actions = _hold(record, self.claim_id, self.expires, self.grace, self.ttl)
        if self.counted:
            actions.append(
                MessageRecord.claim_count.set((MessageRecord.claim_count | 0) + 1))
        attempts = []

        def attempt():
            attempts.append(1)
            record.update(actions=actions, condition=_free_condition(self.now))
        try:
            retrying(attempt)
        except UpdateError as exc:
            if not condition_failed(exc):
                raise
            if len(attempts) == 1:
                return False  # another claimer won it, or it went away
            # A retried write whose first attempt may have landed unseen: look.
            record = _records_at(self.pq, [position_of(record.message_id)])
            if not record or record[0].claim_id != self.claim_id:
                return False
            record = record[0]
        self.taken.append(record)
        return True

    def take_some(self, found: Iterable[MessageRecord], stop_at_loss: bool = False) -> None:
        """Take candidates oldest first until full, as many at once as are
        still needed. Claimers that lose a race are reading the same
        candidates in the same order as the winner: after a loss the rest are
        tried from a random one on, so claimers spread out instead of losing
        every race after the first (each loss is a billed write); or, given
        `stop_at_loss`, not tried at all (the claim goes on in a window), and
        the first is tried alone."""
        order = list(found)
        if self.lost and order:  # a later round: others are at the head too
            jump = random.randrange(len(order))
            order = order[jump:] + order[:jump]
        if stop_at_loss and order:
            # Claimers that have not seen each other read the same head: one
            # write finds out whether others race for it before more are lost.
            if not self.take(order[0]):
                self.lost += 1
                return
            order = order[1:]
        while order and not self.full:
            needed = self.limit - len(self.taken)
            batch, order = order[:needed], order[needed:]
            won = in_parallel([lambda record=record: self.take(record) for record in batch])
            if not all(won):
                self.lost += won.count(False)
                if stop_at_loss:
                    return
                if order:
                    jump = random.randrange(len(order))
                    order = order[jump:] + order[:jump]

    def candidates(self, checked: str, start: int, window: int = 0,
                   ) -> tuple[list[MessageRecord],
                          list[tuple[ClaimRecord, list[MessageRecord]]],
                          list[MessageRecord]]:
        """Free messages to try, oldest first: those of due timers, then from
        `start` on (the cursor), or, given a `window` (that many positions
        handed to this claimer alone), to its end: the next is another's.
        The free messages of gaps the cursor waits at come with the timers'.
        Returns (candidates, timers read, records read from `start`). The
        timers and `start` are read at once: when timers release messages
        (rare: a consumer that did not delete) the read from `start` was
        longer than needed."""
        # Each race lost so far widens the window: claimers spread over more.
        wanted = self.limit - len(self.taken) + CANDIDATE_MARGIN + self.lost
        end = start + window - 1 if window else 2 ** 64 - 1
        reads = [
            lambda: [] if self.timers_read else list(released_by_timers(
                self.pq, due_timers(self.pq, checked, self.now), self.now, self.floor,
                self.unfinished)),
            # Nothing was posted from `start` on when the state was read.
            lambda: self._read_free(start, wanted, end) if start <= self.counter else []]
        if self.gaps and self.gap_records is None and not window:
            reads.append(lambda: _records_at(self.pq, self.gaps))
        timers, read, *gap_records = in_parallel(reads)
        self.timers_read = True
        older = {position_of(r.message_id): r for _, records in timers for r in records}
        if gap_records:
            self.gap_records = {position_of(r.message_id): r for r in gap_records[0]}
            older.update(self.gap_records)
        released = sorted((position, record) for position, record in older.items()
                          if self.untried_free(record))
        found = [record for _, record in released][:wanted]
        named = {position for position, _ in released}  # a timer may name it too
        found += [record for record in read if self.untried_free(record)
                  and position_of(record.message_id) not in named][:wanted - len(found)]
        return found, timers, read

    def untried_free(self, record: MessageRecord) -> bool:
        return (is_free(record, self.now, self.floor, self.unfinished)
                and not self.unlisted_batch(record)
                and position_of(record.message_id) not in self.tried)

    def round(self, checked: str, start: int, window: int = 0) -> tuple[bool, str]:
        """Take candidates (see `candidates`) and note the range read from
        `start`. Returns (whether any was free, timers handled up to)."""
        found, timers, read = self.candidates(checked, start, window)
        waits = bool(self.gaps or self.ahead or self.new_gaps)
        if found:
            self.record(found)
            self.take_some(found, stop_at_loss=not (window or waits))
        self.seen.append((start, self.cursor_after(read, start,
                                                   None if window else self.new_gaps, window)))
        if window:
            self.windows.append(self.seen[-1])
        return bool(found), self.checked_after(timers, checked)

    def _read_free(self, start, wanted, end):
        """The records from `start` (to `end`), read until `wanted` free
        untried messages are among them: without their bodies, which the
        takes' answers bring (a dead-letter move needs the whole message)."""
        read = []
        for record in scan(self.pq, start, consistent=True, end=end,
                           page_size=min(100, 2 * wanted + 5),
                           attributes=None if self.dead_letter else CANDIDATE_ATTRIBUTES):
            read.append(record)
            wanted -= self.untried_free(record)
            if wanted <= 0 or len(read) >= MOST_READ_PER_CLAIM:
                break
        return read

    def record(self, records: Iterable[MessageRecord]) -> None:
        """Write (or extend) the claim record to cover these messages before
        any of them is taken: it is their timer."""
        positions = [position_of(record.message_id) for record in records]
        if not self.recorded:
            retrying(ClaimRecord(
                self.pq, claim_key(self.claim_id), positions=positions,
                ttl=self.ttl, grace=self.grace, updated=self.now, expires=self.expires,
                expires_at=self.expires // 1000 + TIMER_KEEP_S).save)
            self.recorded = True
        else:
            retrying(ClaimRecord(self.pq, claim_key(self.claim_id)).update, actions=[
                ClaimRecord.positions.set(ClaimRecord.positions.append(positions))])

    def checked_after(self, timers: Iterable[tuple[ClaimRecord, list[MessageRecord]]],
                      checked: str) -> str:
        """Past every due timer whose free messages this claim has all tried."""
        for timer, records in timers:
            if any(position_of(r.message_id) not in self.tried for r in records):
                break
            checked = timer.sk
        return checked

    def cursor_after(self, read: Iterable[MessageRecord], start: int,
                     gaps: dict[int, int] | None = None, window: bool = False) -> int:
        """Past the records read from `start` that are not free (held,
        expired, gone, from a post that never committed) or were tried; not
        past a free one left untried, nor a post that may still be writing.
        Given `gaps`, it goes on past young gaps (positions a post may still
        write), noting them there with the time their post must have landed
        by, up to MOST_GAPS in all; else it stops at the first. In a `window`
        it stops at a post that outlived its deadline: what it has seen done
        is stored unconditionally (see _set_window_hints)."""
        expected = cursor = start
        for record in read:
            position = position_of(record.message_id)
            young = position > expected and self.now - record.created < POST_WINDOW_MS
            if young and (gaps is None
                          or len(self.gaps) + len(gaps) + position - expected > MOST_GAPS):
                break  # a gap
            if record.batch_token in self.writing or self.unlisted_batch(record):
                break
            if self.untried_free(record):
                break
            if record.batch_token in self.unfinished:
                if self.gaps or gaps or young or window:
                    # Past a gap, the cursor stays below this post: a late
                    # commit (see messages.commit_batch) would not see it passed.
                    break
                self.abandoned.add(record.batch_token)
            if young:
                gaps.update(dict.fromkeys(range(expected, position),
                                          record.created + POST_WINDOW_MS))
            expected = cursor = position + 1
        return cursor

    def gaps_left(self) -> dict[int, int]:
        """The gaps still to wait at: listed ones not yet written, or holding
        a message this claim left untried or a post not committed yet, and
        those met while reading."""
        left = dict(self.new_gaps)
        for position, deadline in self.gaps.items():
            record = (self.gap_records or {}).get(position)
            if record is None:
                if deadline > self.now or self.gap_records is None:
                    left[position] = deadline
            elif (self.untried_free(record) or record.batch_token in self.unfinished
                  or self.unlisted_batch(record)):
                left[position] = deadline
        return left


def _unchanged(attribute, value):
    return attribute == value if value is not None else attribute.does_not_exist()


def _hold_counts(state, holds):
    """The actions that count a claim's holds for stats, and drop the counts
    of minutes gone by."""
    counts = add_holds(holds)
    if counts:
        gone = clock.now_ms() // HOLD_BUCKET_MS
        counts += [QueueState.holds[key].remove() for key in
                   (state.holds.as_dict() if state.holds is not None else {})
                   if int(key[1:]) < gone and key not in holds]
    return counts


def _set_hints(pq, state, floor, checked, cursor=None, seen_from=None, contended_at=None,
               abandoned=(), holds=None, gap_hints=None, done=(), quiet=False):
    """Store new hints, only over the ones this caller read.

    Both need `checked` as read. The cursor moves to `cursor` if it is as
    read, or, given `seen_from`, from anywhere in [seen_from, cursor): the
    caller saw nothing free left untried there, so the move is right wherever
    another claimer has put the cursor in that range meanwhile, except back
    down over messages a due timer released (settle_timers lowers it that way,
    and moves `checked` with it). A cursor moved over messages of posts that
    outlived their deadline (`abandoned`) moves only while those posts are
    still uncommitted: one that commits late must not be left behind it (the
    post, for its part, commits only while the cursor is not past it). A
    claimer that met contention says so, for the next claimers to take windows.
    Given `gap_hints` (ahead, {position: deadline}), the cursor, `ahead` and
    the gaps are stored only over the cursor and `ahead` as read; a cursor
    moved down drops them and the windows done (claimers read from it
    again), `quiet`: only while the state shows no more contention than as
    read (see settle_timers). Windows done below the new cursor (`done`, as
    read) go.
    The same write counts the claim's holds for stats (`holds`), and drops
    the counts of minutes gone by; should the hints lose their race, the
    counts are written alone.
    """
    actions, condition = [], QueueState.counter.exists()
    if checked != (state.checked or CLAIM_PREFIX):
        actions.append(QueueState.checked.set(checked))
    if gap_hints is not None:
        ahead, gaps = gap_hints
        if cursor != (state.cursor or 0):
            actions.append(QueueState.cursor.set(cursor))
        if ahead is not None:
            actions.append(QueueState.ahead.set(ahead))
        elif state.ahead is not None:
            actions.append(QueueState.ahead.remove())
        if gaps:
            actions.append(QueueState.gaps.set(
                {f"{position:x}": deadline for position, deadline in gaps.items()}))
        elif state.gaps is not None:
            actions.append(QueueState.gaps.remove())
        condition &= (_unchanged(QueueState.cursor, state.cursor)
                      & _unchanged(QueueState.ahead, state.ahead))
        for token in abandoned:
            condition &= QueueState.pending[token].exists()
    elif cursor is not None and cursor != (state.cursor or 0):
        actions.append(QueueState.cursor.set(cursor))
        if cursor < (state.cursor or 0):
            # What was noted above the old cursor may skip what comes back.
            actions += [QueueState.ahead.remove(), QueueState.gaps.remove(),
                        QueueState.done.remove()]
        else:  # and the windows done below the new cursor go
            actions += [QueueState.done[f"{start:x}"].remove()
                        for start in done if start < cursor]
        if seen_from is None:
            condition &= _unchanged(QueueState.cursor, state.cursor)
        elif seen_from > floor:
            condition &= (QueueState.cursor >= seen_from) & (QueueState.cursor < cursor)
        else:  # a cursor below the floor stands for the floor
            condition &= QueueState.cursor.does_not_exist() | (QueueState.cursor < cursor)
        for token in abandoned:
            condition &= QueueState.pending[token].exists()
    if actions:
        condition &= _unchanged(QueueState.checked, state.checked)
        if quiet:  # only while no claimer has been contending since
            condition &= _unchanged(QueueState.contended, state.contended)
    if contended_at is not None and (state.contended or 0) < contended_at - CONTENTION_MS / 2:
        actions.append(QueueState.contended.set(contended_at))
    counts = _hold_counts(state, holds or {})
    if not actions and not counts:
        return
    if not actions:
        update_creating_maps(QueueState(pq, STATE_KEY), counts)
        return
    try:
        update_creating_maps(QueueState(pq, STATE_KEY), actions + counts, condition)
    except UpdateError as exc:
        if not condition_failed(exc):
            raise  # a lost race leaves the hints to the next claimer
        if counts:
            update_creating_maps(QueueState(pq, STATE_KEY), counts)


def settle_timers(pq: str, floor: int) -> None:
    """Bring the free messages of due timers back above the cursor.

    Claimers take such messages straight from the timers; where none comes by,
    the sweeper calls this so due timers do not pile up for listings to read.
    """
    now = clock.now_ms()
    state = load_state(pq)
    if (state.contended or 0) > now - CONTENTION_MS - POST_WINDOW_MS:
        # Claimers are about, and may be noting windows done: they take
        # these messages themselves, and the cursor stays where it is.
        return
    checked, cursor = state.checked or CLAIM_PREFIX, state.cursor or 0
    timers = due_timers(pq, checked, now)
    _, unfinished = unfinished_batches(state, now)
    for timer, records in released_by_timers(pq, timers, now, floor, unfinished):
        cursor = min([cursor] + [position_of(r.message_id) for r in records])
        checked = timer.sk
    _set_hints(pq, state, floor, checked, cursor=cursor, quiet=True)


def create(project: str, queue: str, floor: int, ttl: int, grace: int, limit: int,
           dead_letter: DeadLetter | None = None,
           version: int | None = None) -> tuple[str, list[Message]]:
    """Claim up to `limit` free messages, oldest first.

    Returns (claim_id, [Message]); the list is empty when nothing was free.
    StaleQueue, before anything is taken, if the queue is not at `version`.
    """
    return _claim(Claimer(queue_key(project, queue), floor, ttl, grace, limit,
                          clock.now_ms(), dead_letter, version=version))


def pop(project: str, queue: str, floor: int, limit: int,
        version: int | None = None) -> list[Message]:
    """Remove up to `limit` free messages, oldest first, and return them.

    They are held, like a claim that does not count, and then deleted. The
    hold's claim record stays: should the deletes not happen, it is the timer
    that frees the messages again.
    """
    claimer = Claimer(queue_key(project, queue), floor, ttl=60, grace=0, limit=limit,
                      now=clock.now_ms(), counted=False, version=version)
    _, taken = _claim(claimer)
    if taken:
        delete_positions(claimer.pq, [position_of(message.id) for message in taken])
    for message in taken:
        message.claim_id = None
    return taken


def _cursor_move(seen, cursor):
    """The range (from, to) to move the cursor over: of the contiguous runs of
    seen ranges, the one holding the cursor as last read, else the one that
    reaches furthest; (None, None) if none moves it."""
    runs = []
    for seen_from, seen_to in sorted(seen):
        if runs and seen_from <= runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], seen_to)
        else:
            runs.append([seen_from, seen_to])
    runs = [run for run in runs if run[1] > run[0]]
    holding = [run for run in runs if run[0] <= cursor < run[1]]
    best = max(holding or runs, key=lambda run: run[1], default=(None, None))
    return tuple(best)


def _windows_done(state):
    """{start: end} of the windows done, as the state has them."""
    done = state.done.as_dict() if state.done is not None else {}
    return {int(start, 16): int(end) for start, end in done.items()}


def _through_done(cursor, done):
    """The starts of the windows done the cursor can move through, one
    after the other from `cursor`, and where that takes it."""
    path = []
    while done.get(cursor, cursor) > cursor:
        path.append(cursor)
        cursor = done[cursor]
    return path, cursor


def _set_window_hints(pq, state, floor, checked, windows, contended_at=None,
                      abandoned=(), holds=None):
    """Store what a claim from windows saw: the windows it has done, for the
    cursor to move through later, with one unconditional write.

    The cursor moves over a window only once every window below it is done:
    a claimer whose own window completes that (as the state it read shows
    it) moves it, through all of them, with a write conditioned on the
    cursor as read; so does one that moves `checked`. Should that lose its
    race, the windows done and the counts are written alone. A claimer that
    sees (in what that write returns) its windows complete FOLD_DONE or more
    from the cursor moves it with one more write: one in several claims. At
    most MOST_DONE windows wait: past that, a claimer stores only its counts
    (and the cursor catches up when a claimer reads from it).
    """
    cursor = max(state.cursor or 0, floor)
    done = _windows_done(state)
    mine = {start: end for start, end in windows if end > start}
    path, reach = _through_done(cursor, {**done, **mine})
    carries = any(start in mine for start in path)
    waiting = {} if len(done) >= MOST_DONE else {
        start: end for start, end in mine.items() if not (carries and start in path)}
    noted = [QueueState.done[f"{start:x}"].set(end) for start, end in waiting.items()]
    counts = _hold_counts(state, holds or {})
    if contended_at is not None and (state.contended or 0) < contended_at - CONTENTION_MS / 2:
        counts.append(QueueState.contended.set(contended_at))
    if carries or checked != (state.checked or CLAIM_PREFIX):
        actions, condition = [], _unchanged(QueueState.checked, state.checked)
        if checked != (state.checked or CLAIM_PREFIX):
            actions.append(QueueState.checked.set(checked))
        if carries:
            actions.append(QueueState.cursor.set(reach))
            actions += [QueueState.done[f"{start:x}"].remove()
                        for start in done if start < reach]
            condition &= _unchanged(QueueState.cursor, state.cursor)
            for token in abandoned:
                condition &= QueueState.pending[token].exists()
        try:
            update_creating_maps(QueueState(pq, STATE_KEY), actions + noted + counts,
                                 QueueState.counter.exists() & condition)
            return
        except UpdateError as exc:
            if not condition_failed(exc):
                raise
        if carries and len(done) < MOST_DONE:  # its windows wait for the next one
            noted += [QueueState.done[f"{start:x}"].set(mine[start])
                      for start in path if start in mine]
    if not (noted or counts):
        return
    fresh = QueueState(pq, STATE_KEY)
    update_creating_maps(fresh, noted + counts)
    # The write returns the state: if this claim's windows completed a run of
    # FOLD_DONE windows from the cursor, it moves the cursor through them.
    cursor = max(fresh.cursor or 0, floor)
    done = _windows_done(fresh)
    path, reach = _through_done(cursor, done)
    if len(path) >= FOLD_DONE and any(start in waiting for start in path):
        try:
            retrying(fresh.update, actions=[QueueState.cursor.set(reach)] + [
                QueueState.done[f"{start:x}"].remove() for start in done if start < reach],
                condition=_unchanged(QueueState.cursor, fresh.cursor))
        except UpdateError as exc:
            if not condition_failed(exc):
                raise


def _take_window(pq, size, contended_at=None):
    """The queue's state, read by the write that hands out the next window
    (and, given `contended_at`, says claimers contend)."""
    state = QueueState(pq, STATE_KEY)
    actions = [QueueState.window_end.add(size)]
    if contended_at is not None:
        actions.append(QueueState.contended.set(contended_at))
    retrying(state.update, actions=actions, condition=QueueState.counter.exists())
    return state


def _restart_windows(pq, window_end, new_end):
    """Move the window pointer from `window_end` (as read) to `new_end`;
    False if another claimer moved it first."""
    try:
        retrying(QueueState(pq, STATE_KEY).update,
                 actions=[QueueState.window_end.set(new_end)],
                 condition=QueueState.window_end == window_end)
    except UpdateError as exc:
        if not condition_failed(exc):
            raise
        return False
    return True


def _claim_from_windows(claimer, contended_at=None):
    """Take what due timers released and free messages from windows of
    positions handed to this claimer alone, as many as it still needs
    (`contended_at`: it has just lost races, and says so with the first).
    Returns the state last read, the timers handled up to, and whether other
    claimers are about. StaleQueue if the queue is not at the claimer's
    version, before anything is taken."""
    others = False
    for _ in range(CLAIM_ROUNDS):
        size = claimer.limit - len(claimer.taken)
        state = _take_window(claimer.pq, size, contended_at)
        contended_at = None
        _saw_contention(claimer.pq, state.contended)
        if not claimer.taken:
            check_version(state, claimer.version)
        claimer.saw(state)
        start = int(state.window_end) - size
        cursor = max(state.cursor or 0, claimer.floor)
        if start < cursor:  # the windows fell behind the cursor: restart them there
            if not _restart_windows(claimer.pq, state.window_end, cursor + size):
                others = True
                continue
            start = cursor
        if start > (state.counter or 0):
            break  # nothing posted there yet: the oldest free messages are at the cursor
        others = others or start > cursor
        taken = len(claimer.taken)
        _, checked = claimer.round(state.checked or CLAIM_PREFIX, start, window=size)
        if len(claimer.taken) > taken:
            return state, checked, others
    return state, state.checked or CLAIM_PREFIX, others


def _saw_contention(pq, contended):
    """Note when claimers were last seen contending on the queue."""
    key = (QueueState.Meta.table_name, pq)
    with _contended_lock:
        _contended[key] = max(int(contended or 0), _contended.get(key, 0))
        _contended.move_to_end(key)
        if len(_contended) > CONTENDED_QUEUES:
            _contended.popitem(last=False)


def _contended_lately(pq, now):
    """Whether claimers contended on the queue lately, as last seen here: the
    state says so too (it only ever says later)."""
    with _contended_lock:
        return _contended.get((QueueState.Meta.table_name, pq), 0) > now - CONTENTION_MS


def _claim(claimer):
    others = windowed = False
    if _contended_lately(claimer.pq, claimer.now):
        # The window's write reads the state: no read before it.
        state, checked, others = _claim_from_windows(claimer)
        windowed = True
    else:
        state = load_state(claimer.pq)
        check_version(state, claimer.version)
        _saw_contention(claimer.pq, state.contended)
        claimer.saw(state)
        checked = state.checked or CLAIM_PREFIX
        if (state.contended or 0) > claimer.now - CONTENTION_MS:
            state, checked, others = _claim_from_windows(claimer)
            windowed = True
    cursor = max(state.cursor or 0, claimer.floor)
    done = _windows_done(state)
    rounds = 0 if claimer.taken else CLAIM_ROUNDS
    if claimer.ahead:  # past the gaps the cursor waits at
        start = claimer.ahead
    else:  # past the windows done from the cursor on
        _, start = _through_done(cursor, done)
        if rounds and start > cursor:
            claimer.seen.append((cursor, start))
    waits = False  # at gaps: the hints say where to read on from
    for _ in range(rounds):  # again if others won races
        windowed = False
        found, checked = claimer.round(checked, start)
        start = claimer.seen[-1][1]
        waits = bool(claimer.gaps or claimer.ahead or claimer.new_gaps)
        if claimer.full or not found:
            break
        if claimer.lost and not waits:
            # Others race for the same messages: the rest comes from a window
            # (the range read here was read with a state now out of date).
            claimer.seen.clear()
            state, checked, others = _claim_from_windows(claimer, contended_at=claimer.now)
            windowed = True
            break
    contended = others or claimer.lost > 0
    telemetry.count(telemetry.CLAIM_RACES_LOST, claimer.lost)
    hints = {"contended_at": claimer.now if contended else None,
             "abandoned": claimer.abandoned,
             "holds": {hold_key("c", claimer.expires): len(claimer.taken)}}
    if waits:
        # The cursor waits at the first gap left; the next claims read on from
        # where this one stopped.
        gaps = claimer.gaps_left()
        _set_hints(claimer.pq, state, claimer.floor, checked,
                   cursor=min(gaps, default=start), gap_hints=(start if gaps else None, gaps),
                   **hints)
    elif windowed:
        _set_window_hints(claimer.pq, state, claimer.floor, checked, claimer.windows, **hints)
    else:
        seen_from, seen_to = _cursor_move(claimer.seen, cursor)
        _set_hints(claimer.pq, state, claimer.floor, checked, cursor=seen_to,
                   seen_from=seen_from, done=done, **hints)
    taken = sorted(claimer.taken, key=lambda record: position_of(record.message_id))
    return claimer.claim_id, [to_message(record, claimer.now) for record in taken]


def held_records(pq: str, claim: ClaimRecord, now: int) -> list[MessageRecord]:
    """The live messages a claim record still holds."""
    claim_id = claim.sk[len(CLAIM_PREFIX):]
    return [record for record in _records_at(pq, claim.positions)
            if record.claim_id == claim_id and (record.claim_expires or 0) > now
            and record.expires > now]


def get(project: str, queue: str,
        claim_id: str) -> tuple[int, int, list[Message]] | None:
    """(age s, ttl s, [Message]) of a live claim, or None."""
    now = clock.now_ms()
    claim = live_claim(project, queue, claim_id, now)
    if claim is None:
        return None
    records = held_records(queue_key(project, queue), claim, now)
    return ((now - claim.updated) // 1000, int(claim.ttl),
            [to_message(record, now) for record in records])


def _write_timer(pq, due, claim_id, positions):
    timer = ClaimRecord(pq, f"{CLAIM_PREFIX}{due:012x}{random.getrandbits(32):08x}",
                        positions=positions, of=claim_id,
                        expires_at=due // 1000 + TIMER_KEEP_S)
    retrying(timer.save)
    return timer


def renew(project: str, queue: str, claim_id: str, ttl: int, grace: int) -> bool:
    """Restart a live claim with a new ttl; False if it is not live.

    The timer for the new expiry is written first, so a crash half-way never
    leaves a message held past every timer.
    """
    pq = queue_key(project, queue)
    now = clock.now_ms()
    claim = live_claim(project, queue, claim_id, now)
    if claim is None:
        return False
    expires = now + ttl * 1000
    _write_timer(pq, expires, claim_id, claim.positions)
    moved = {}  # stats: the holds that now end in another minute
    for record in held_records(pq, claim, now):
        ended = hold_key("c", record.claim_expires)
        try:
            retrying(record.update,
                     actions=_hold(record, claim_id, expires, grace, ttl),
                     condition=(MessageRecord.claim_id == claim_id)
                     & (MessageRecord.claim_expires > now))
        except UpdateError as exc:
            if not condition_failed(exc):
                raise
            continue
        moved[ended] = moved.get(ended, 0) - 1
        moved[hold_key("c", expires)] = moved.get(hold_key("c", expires), 0) + 1
    if any(moved.values()):
        update_creating_maps(QueueState(pq, STATE_KEY), add_holds(moved))
    retrying(claim.update, actions=[
        ClaimRecord.ttl.set(ttl), ClaimRecord.grace.set(grace),
        ClaimRecord.updated.set(now), ClaimRecord.expires.set(expires),
        ClaimRecord.expires_at.set(expires // 1000 + TIMER_KEEP_S)])
    return True


def release(project: str, queue: str, claim_id: str) -> None:
    """End a claim now; its messages can be claimed again at once.

    The messages are freed before the timer that announces them is written:
    a claimer that read the timer earlier would find them still held and count
    the timer as handled. A crash before the timer only delays them until the
    claim record's own key falls due.
    """
    pq = queue_key(project, queue)
    now = clock.now_ms()
    claim = live_claim(project, queue, claim_id, now)
    if claim is None:
        return
    held = held_records(pq, claim, now)
    retrying(claim.update, actions=[ClaimRecord.expires.set(now)])
    freed = {}  # stats: the holds that ended
    for record in held:
        ended = hold_key("c", record.claim_expires)
        try:
            retrying(record.update,
                     actions=[MessageRecord.claim_id.remove(),
                              MessageRecord.claim_expires.remove()],
                     condition=MessageRecord.claim_id == claim_id)
        except UpdateError as exc:
            if not condition_failed(exc):
                raise
            continue
        freed[ended] = freed.get(ended, 0) - 1
    timer = _write_timer(pq, now, claim_id, claim.positions)
    # Claimers skip timers at or below `checked`: make sure this one is above.
    # The count of holds goes first, unconditionally, and tells whether the
    # conditional write is needed at all (it seldom is).
    below_timer = timer.sk[:len(CLAIM_PREFIX) + 12]
    state = QueueState(pq, STATE_KEY)
    if freed:
        update_creating_maps(state, add_holds(freed))
        if state.checked is None or state.checked <= below_timer:
            return  # claimers read timers from `checked` on: this one too
    try:
        retrying(state.update, actions=[QueueState.checked.set(below_timer)],
                 condition=QueueState.checked > below_timer)
    except UpdateError as exc:
        if not condition_failed(exc):
            raise


def delete_message(project: str, queue: str, message_id: str,
                   claim_id: str | None = None) -> None:
    """Delete one message, honouring its claim.

    Without claim_id the message must not be held by a live claim; with one,
    that claim must hold it. Raises ClaimedByAnother, ClaimNotFound or
    MessageNotClaimed otherwise. A missing message is not an error.
    """
    position = position_of(message_id)
    if position is None:
        return
    pq = queue_key(project, queue)
    now = clock.now_ms()
    record = MessageRecord(pq, position_key(position))
    if claim_id is None:
        condition = (MessageRecord.claim_id.does_not_exist()
                     | (MessageRecord.claim_expires <= now))
    else:
        condition = ((MessageRecord.claim_id == claim_id)
                     & (MessageRecord.claim_expires > now))
    try:
        retrying(record.delete, condition=MessageRecord.sk.does_not_exist() | condition)
    except DeleteError as exc:
        if not condition_failed(exc):
            raise
        raise _why_refused(project, queue, position, claim_id, now) from None


def _why_refused(project, queue, position, claim_id, now):
    if claim_id is None:
        return ClaimedByAnother()
    if not is_live(project, queue, claim_id):
        return ClaimNotFound()
    record = get_records(queue_key(project, queue), [position]).get(position)
    if record is None or not record.claim_id or (record.claim_expires or 0) <= now:
        return MessageNotClaimed()
    return ClaimedByAnother()

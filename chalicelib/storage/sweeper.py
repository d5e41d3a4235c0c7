"""The scheduled sweep: removes what expired, and what deleted queues left.

Reads already ignore expired items, and DynamoDB's TTL reclaims them too, but
lazily (up to days); the sweep keeps queues short and stats honest. Each run
works in bounded batches against a deadline, and keeps where it stopped, so a
run never times out however much has expired and the next one picks up there:

* deleted queues: a job item per deleted queue (written by the delete) names
  the partition; everything in it below the floor of the queue now under that
  name (everything, if there is none) is left over. The job goes once it is
  all gone.
* live queues: the queues table is walked a page per run, resuming from the
  last key; for each queue the expired messages at the head are deleted (an
  unexpired message stops it: those behind it wait for the next runs, or for
  TTL), and timers that fell due with no claimer around are settled (see
  claims.settle_timers).

A job or queue whose sweep fails is logged, counted and skipped: one bad item
must never stop the sweep for everyone else.
"""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from pynamodb.exceptions import DoesNotExist

from chalicelib import clock
from chalicelib.storage import claims, places, pools
from chalicelib.storage import queues as queue_store
from chalicelib.storage.messages import (
    BATCH_WRITE_MAX,
    batch_write,
    forget_abandoned_batches,
    position_key,
    scan,
)
from chalicelib.storage.models import (
    CLAIM_PREFIX,
    FLAVORS_KEY,
    POOLS_KEY,
    STATE_KEY,
    SWEEP_JOBS_KEY,
    SWEEP_PROGRESS_KEY,
    ClaimRecord,
    MessageRecord,
    QueueRecord,
    SweepJob,
    SweepProgress,
    queue_key,
)
from chalicelib.storage.retry import retrying

if TYPE_CHECKING:
    from chalicelib.config import Settings

log = logging.getLogger("zaqar.sweeper")
PAGE = 100
HEAD_PAGE = 10


class Budget:
    """Stops a run at its deadline, leaving the rest to the next run; counts
    what the run deleted and which of its jobs and queues failed."""

    def __init__(self, deadline_ms: int) -> None:
        self.deadline = deadline_ms
        self.deleted = 0
        self.failed = 0

    @property
    def spent(self) -> bool:
        # Every run deletes at least one batch, so even a short one progresses.
        return self.deleted > 0 and clock.now_ms() >= self.deadline


def _sweep(items, is_garbage, budget, stop_at_live=False):
    """Delete the garbage among `items` (a lazy query) 25 at a time.

    True when the query was read to its end (or, with stop_at_live, to the
    first item that is not garbage); False when the budget ran out first.
    """
    chunk = []
    for item in items:
        if is_garbage(item):
            chunk.append(MessageRecord(item.pq, item.sk))
        elif stop_at_live:
            break
        if len(chunk) == BATCH_WRITE_MAX:
            batch_write(deletes=chunk)
            budget.deleted += len(chunk)
            chunk = []
            if budget.spent:
                return False
    batch_write(deletes=chunk)
    budget.deleted += len(chunk)
    return True


def sweep_deleted_queue(job: SweepJob, budget: Budget) -> bool:
    """Remove what a deleted queue left; True once all of it is gone."""
    project, _, name = job.sk.rpartition("/")
    facts = queue_store.facts(project, name, fresh=True)
    here = places.current()
    # A queue of that name now placed elsewhere left all it had here.
    below = (2 ** 64 if facts is None or facts.location != (here.uri if here else None)
             else facts.floor)
    # A queue created again before anything was posted has floor 0: no
    # message can sit below it (and an empty key range is a DynamoDB error).
    if below > 0:
        old_messages = MessageRecord.query(
            job.sk, MessageRecord.sk.between(position_key(0), position_key(below - 1)),
            page_size=PAGE)
        if not _sweep(old_messages, lambda item: True, budget):
            return False
    # Claims and timers of the old incarnation name only positions below it.
    holds = ClaimRecord.query(job.sk, ClaimRecord.sk.startswith(CLAIM_PREFIX),
                              page_size=PAGE)
    return _sweep(holds, lambda item: all(p < below for p in item.positions), budget)


def sweep_queue_head(project: str, name: str, floor: int, budget: Budget) -> None:
    """Delete the expired messages at the head of a live queue."""
    now = clock.now_ms()
    # Small pages: most runs only learn that the head is alive.
    head = scan(queue_key(project, name), floor, page_size=HEAD_PAGE)
    _sweep(head, lambda record: record.expires <= now, budget, stop_at_live=True)


def _attempt(budget, what, step, *args):
    """step(*args), or None when it fails: logged and counted, so the run
    goes on with the next job or queue."""
    try:
        return step(*args)
    except Exception:
        budget.failed += 1
        log.exception("sweep of %s failed; skipped until the next run", what)
        return None


def longest_life_ms(settings: Settings) -> int:
    """No message outlives this: the longest ttl, stretched by the longest claim."""
    return (settings.max_message_ttl + settings.max_claim_ttl
            + settings.max_claim_grace) * 1000


def _sweep_live_queue(queue, budget, settings):
    pq = queue_key(queue.project, queue.name)
    floor = int(queue.floor or 0)
    with places.at(queue.location):
        sweep_queue_head(queue.project, queue.name, floor, budget)
        claims.settle_timers(pq, floor)
        forget_abandoned_batches(pq, clock.now_ms(), longest_life_ms(settings))


def _finish_job(job, budget):
    if sweep_deleted_queue(job, budget):
        retrying(job.delete)


def _sweep_jobs(budget, pooling):
    """The deleted queues' leftovers, in the stage's table and, on a pooling
    stage, each pool's; False if the budget ran out."""
    for uri in [None, *(pool.uri for pool in (pools.every() if pooling else ()))]:
        with places.at(uri):
            # Every job is read (they are small), so jobs that keep failing
            # never hold back the ones after them.
            for job in retrying(lambda: list(SweepJob.query(SWEEP_JOBS_KEY, page_size=PAGE))):
                if budget.spent:
                    return False
                _attempt(budget, f"deleted queue {job.sk!r}", _finish_job, job, budget)
    return True


def run(deadline_ms: int, settings: Settings) -> Budget:
    """One sweep run, with the stage's settings; returns its Budget (what it
    deleted, what failed)."""
    budget = Budget(deadline_ms)
    if not _sweep_jobs(budget, settings.pooling):
        return budget
    try:
        progress = retrying(SweepProgress.get, SWEEP_PROGRESS_KEY, STATE_KEY)
    except DoesNotExist:
        progress = SweepProgress(SWEEP_PROGRESS_KEY, STATE_KEY)
    start = json.loads(progress.queues_from) if progress.queues_from else None
    page = QueueRecord.scan(limit=PAGE, last_evaluated_key=start, page_size=PAGE)
    for queue in page:
        if budget.spent:
            return budget
        if queue.project in (POOLS_KEY, FLAVORS_KEY):
            continue  # a pool's or flavor's item, not a queue
        _attempt(budget, f"queue {queue.project!r}/{queue.name!r}",
                 _sweep_live_queue, queue, budget, settings)
    last = page.last_evaluated_key
    progress.queues_from = json.dumps(last) if last else None
    retrying(progress.save)
    if budget.failed:
        log.warning("sweep run: %d deleted, %d jobs or queues failed",
                    budget.deleted, budget.failed)
    return budget

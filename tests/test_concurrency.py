"""Many claimers and producers on one queue, over the real storage code.

Runs on DynamoDB Local when Java is present: it applies each request
atomically, as DynamoDB does. moto (the fallback) does not: two concurrent
conditional writes can both pass, and a Query can fail while another thread
writes. So on moto the requests are made one at a time, which hides none of
the storage code's own races: those lie between requests.

The clock is the real one: claims last 300 s and a test gives up after 90 s,
so no claim expires while a test runs, and a message that shows up in two
claims was held by both at once.
"""
import threading
import time
from collections import Counter

import moto
import pytest

from chalicelib import clock
from chalicelib.actions import claims, messages
from contract.support import (
    context,
    model_classes,
    new_project,
    shared_dynamodb_local,
    storage_at,
)
from local import dynamodb_local
from local.tables import create_tables

CLAIMERS = 8
PRODUCERS = 4
# moto is slow per request (measured on 2 busy cores: 70 ms, and about 2 s
# per claim on a queue of 1,000 messages, as every Query evaluates the whole
# partition), so the fallback works a smaller queue. Posts of over 25
# messages need two BatchWriteItem calls.
QUEUE_DEPTH = {"dynamodb-local": 1000, "moto": 100}
PRODUCER_BATCHES = {"dynamodb-local": (1, 30, 2, 12, 26, 3, 7), "moto": (1, 30)}
CLAIM_TTL = 300
CLAIM_LIMIT = 10
DEADLINE_S = 90  # a stalled run fails with what it got rather than hanging


class OneRequestAtATime:
    """Makes every DynamoDB request of the storage layer wait for the one
    before it to finish (botocore events on each model's client)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.emitters = {id(model._get_connection().connection.client):
                         model._get_connection().connection.client.meta.events
                         for model in model_classes()}.values()

    def start(self, context, **_):
        self.lock.acquire()
        context["holds_request_lock"] = True

    def finish(self, context, **_):
        if context.pop("holds_request_lock", False):
            self.lock.release()

    def __enter__(self):
        for emitter in self.emitters:
            emitter.register("before-call.dynamodb", self.start)
            emitter.register("after-call.dynamodb", self.finish)
            emitter.register("after-call-error.dynamodb", self.finish)
        return self

    def __exit__(self, *exc_info):
        for emitter in self.emitters:
            emitter.unregister("before-call.dynamodb", self.start)
            emitter.unregister("after-call.dynamodb", self.finish)
            emitter.unregister("after-call-error.dynamodb", self.finish)


@pytest.fixture(scope="module")
def backend():
    """(name, settings) of the backend; the actions build storage from the settings."""
    if not dynamodb_local.java_available():
        # The lock goes on the clients of the models the settings point at.
        with moto.mock_aws(), storage_at(None) as settings, OneRequestAtATime():
            create_tables(settings)
            yield "moto", settings
        return
    with storage_at(shared_dynamodb_local()) as settings:
        yield "dynamodb-local", settings


class Ledger:
    """What the workers did, recorded under a lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.claims = []  # (claim id, claimed at ms, expires at ms, [message ids])
        self.empty_claims = 0
        self.deleted = []
        self.errors = []

    def record_claim(self, claim_id, claimed_at, message_ids):
        with self.lock:
            if message_ids:
                self.claims.append((claim_id, claimed_at,
                                    claimed_at + CLAIM_TTL * 1000, message_ids))
            else:
                self.empty_claims += 1

    def record_delete(self, message_id):
        with self.lock:
            self.deleted.append(message_id)

    def consumed(self):
        with self.lock:
            return len(self.deleted)


def run_threads(targets):
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_S + 30)


def claimer(ctx, queue, ledger, done):
    """Claim, then delete each message with the claim id, until done()."""
    def work():
        deadline = time.monotonic() + DEADLINE_S
        try:
            while not done():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"gave up after {DEADLINE_S} s with "
                                       f"{ledger.consumed()} messages consumed")
                claimed_at = clock.now_ms()
                claim_id, taken = claims.create(
                    ctx, queue, {"ttl": CLAIM_TTL, "grace": 60}, limit=CLAIM_LIMIT)
                ledger.record_claim(claim_id, claimed_at, [m.id for m in taken])
                for message in taken:
                    messages.delete(ctx, queue, message.id, claim_id)
                    ledger.record_delete(message.id)
                if not taken:
                    time.sleep(0.01)  # nothing free right now; let producers run
        except Exception as exc:  # reported by the test, with the others
            with ledger.lock:
                ledger.errors.append(repr(exc))
    return work


def assert_exclusive_and_complete(ledger, posted_ids):
    assert ledger.errors == []
    holders = {}
    for claim_id, claimed_at, expires, message_ids in sorted(ledger.claims, key=lambda c: c[1]):
        for message_id in message_ids:
            if message_id in holders:
                earlier_id, earlier_expires = holders[message_id]
                # Only a claim that had expired may give its message to another.
                assert earlier_expires <= claimed_at, (
                    f"message {message_id} held by claims {earlier_id} and {claim_id}")
            holders[message_id] = (claim_id, expires)
    deletions = Counter(ledger.deleted)
    assert [m for m, n in deletions.items() if n > 1] == []
    assert set(posted_ids) - set(deletions) == set(), "messages never consumed"
    assert set(deletions) - set(posted_ids) == set()


def assert_queue_empty(ctx, queue):
    found, _, _ = messages.list_messages(ctx, queue, echo=True, include_claimed=True)
    assert found == []
    assert claims.create(ctx, queue, {"ttl": 60})[1] == []


def test_claimers_consume_each_message_exactly_once(backend):
    name, settings = backend
    ctx, queue, total = context(new_project(), settings), "work", QUEUE_DEPTH[name]
    posted = []
    for start in range(0, total, 50):
        posted += messages.post(ctx, queue, {"messages": [
            {"body": {"n": n}} for n in range(start, start + 50)]})
    ledger = Ledger()
    started = time.monotonic()
    run_threads([claimer(ctx, queue, ledger, lambda: ledger.consumed() >= total)
                 for _ in range(CLAIMERS)])
    elapsed = time.monotonic() - started

    assert_exclusive_and_complete(ledger, posted)
    assert_queue_empty(ctx, queue)
    print(f"\n{name}: {CLAIMERS} claimers consumed {total} messages in "
          f"{elapsed:.1f} s with {len(ledger.claims)} claims "
          f"({ledger.empty_claims} empty)")


def test_producers_and_claimers_at_once_lose_nothing(backend):
    name, settings = backend
    ctx, queue = context(new_project(), settings), "busy"
    batches = PRODUCER_BATCHES[name]
    per_producer = sum(batches)
    posted = {producer: [] for producer in range(PRODUCERS)}
    producing = [PRODUCERS]
    ledger = Ledger()

    def producer(number):
        def work():
            try:
                sent = 0
                for size in batches:
                    posted[number] += messages.post(ctx, queue, {"messages": [
                        {"body": {"p": number, "n": sent + i}} for i in range(size)]})
                    sent += size
            except Exception as exc:
                with ledger.lock:
                    ledger.errors.append(repr(exc))
            finally:
                with ledger.lock:
                    producing[0] -= 1
        return work

    def done():
        with ledger.lock:
            finished = producing[0] == 0
        return finished and ledger.consumed() >= PRODUCERS * per_producer

    started = time.monotonic()
    run_threads([producer(number) for number in range(PRODUCERS)]
                + [claimer(ctx, queue, ledger, done) for _ in range(CLAIMERS)])
    elapsed = time.monotonic() - started

    for ids in posted.values():
        # One producer's messages keep their posting order (ids are positions).
        assert len(ids) == per_producer
        assert ids == sorted(ids)
    assert_exclusive_and_complete(ledger, sum(posted.values(), []))
    assert_queue_empty(ctx, queue)
    print(f"\n{name}: {PRODUCERS} producers posted {PRODUCERS * per_producer} "
          f"messages while {CLAIMERS} claimers consumed them, in {elapsed:.1f} s "
          f"with {len(ledger.claims)} claims ({ledger.empty_claims} empty)")

"""A bounded soak test of the local runner, opt-in: skipped unless SOAK_SECONDS
is set, so `make test` and CI never run it.

    SOAK_SECONDS=180 .venv/bin/python -m pytest tests/e2e/test_soak.py -p no:xdist -s

For SOAK_SECONDS of wall time, threads run together against one runner
(DynamoDB Local in memory, sweep every 2 s):

* producers post batches (1 to 20 messages, every body carrying a unique id)
  to the claimed queues (mostly long ttl, some 60 s) and to two unclaimed
  queues (`x-short`: 60 s only; `x-mixed`: 60 s and long, interleaved);
* claimers claim up to 10 from the claimed queues and delete each message with
  its claim id; sometimes they release the claim or let it lapse;
* one churner per churn queue creates, posts to, deletes and re-creates its
  queue under the same name (including PUT, DELETE, PUT with nothing posted,
  and posting to a deleted queue), checking each incarnation sees only its own
  messages;
* a clock keeper moves the runner's clock ahead every so often (claims lapse,
  60 s messages expire), pausing the claimers shortly before so some short
  messages expire unconsumed, then probes messages by id and waits, bounded,
  for the sweep to bring `x-short`'s stats down.

Then the clock moves past every claim and short ttl, the claimed queues are
drained, and the checks run: each message consumed once or expired when its
ttl says (claim ids and server-time bounds tell a redelivery after a lapsed or
released claim from a double delivery), nothing of a deleted queue reappears,
the sweep kept up, stats equal the truth, no 5xx. Every request's server time
is bounded by [wall clock + offset before it, wall clock + offset after it],
so a check only fails when the bounds prove it; ambiguous cases are counted.

The whole run takes about SOAK_SECONDS plus one to two minutes.
"""
import collections
import os
import random
import re
import threading
import time
import traceback
import uuid
from pathlib import Path

import pytest
import requests

from conftest import headers

SOAK_SECONDS = os.environ.get("SOAK_SECONDS")
pytestmark = pytest.mark.skipif(
    not SOAK_SECONDS, reason="soak test: set SOAK_SECONDS=<wall seconds> to run it")

LONG_TTL = 86400          # never reached: the clock moves ~10 min in a run
SHORT_TTL = 60            # the minimum; meant to expire
CLAIM_TTL = 60
CLAIM_GRACE = 60
CLAIM_LIMIT = 10
ADVANCE_STEP = 61         # each move lapses every claim and every fresh short ttl
FINAL_STEP = CLAIM_TTL + CLAIM_GRACE + SHORT_TTL + 10   # past any stretched life
LULL = 6                  # claimers pause this long before each move
SWEEP_WAIT = 20           # wall seconds for the sweep (and stream) to catch up
SETTLE_WAIT = 60          # wall seconds for the final stats to reach the truth
REQUEST_TIMEOUT = 30
DRAIN_WAIT = 300          # wall seconds to claim and delete what is left
SLACK = 0.05              # seconds: ms rounding on the server's side

CLAIMED_QUEUES = ["l0", "l1", "l2", "l3"]
X_SHORT, X_MIXED = "x-short", "x-mixed"
CHURN_QUEUES = ["c0", "c1"]
PRODUCERS, CLAIMERS = 3, 3
EXAMPLES = 6              # problems shown per kind


# -- the runner's clock, and server-time bounds ------------------------------

class ServerClock:
    """Moves the runner's clock and bounds the server's time around each
    request."""

    def __init__(self, runner):
        self.runner = runner
        self.seen = self.ahead = float(runner.offset)
        self.lock = threading.Lock()
        self.moves = []                         # (server time before, after) of each move

    def lo(self):
        """A lower bound of the server's time from now on."""
        return time.time() + self.seen - SLACK

    def hi(self):
        """An upper bound of the server's time until now."""
        return time.time() + self.ahead + SLACK

    def advance(self, seconds):
        with self.lock:
            self.ahead = self.runner.offset + seconds
            now = time.time()
            self.moves.append((now + self.seen, now + self.ahead))
            self.runner.advance(seconds)
            self.seen = self.ahead


# -- what was done and seen --------------------------------------------------

class Msg:
    __slots__ = ("uid", "queue", "ttl", "p_lo", "p_hi", "mid", "certain", "gen")

    def __init__(self, uid, queue, ttl, p_lo, gen=0):
        self.uid, self.queue, self.ttl, self.p_lo, self.gen = uid, queue, ttl, p_lo, gen
        self.p_hi, self.mid, self.certain = None, None, False


class Claim:
    __slots__ = ("cid", "queue", "t_lo", "t_hi", "uids", "release_lo", "who")

    def __init__(self, cid, queue, t_lo, t_hi, uids, who):
        self.cid, self.queue, self.t_lo, self.t_hi = cid, queue, t_lo, t_hi
        self.uids, self.who, self.release_lo = uids, who, None

    def end_lo(self):
        """The earliest the claim can have stopped holding its messages."""
        end = self.t_lo + CLAIM_TTL
        return end if self.release_lo is None else min(end, self.release_lo)


class Record:
    def __init__(self):
        self.lock = threading.Lock()
        self.messages = {}                          # uid -> Msg
        self.deliveries = collections.defaultdict(list)   # uid -> [Claim]
        self.deletes = collections.defaultdict(list)      # uid -> [(cid, lo, hi, status)]
        self.claims = []
        self.probes = []                            # (queue, lo, hi, uids asked, uids seen)
        self.attempted = collections.Counter()      # queue -> messages whose post started
        self.problems = collections.defaultdict(list)
        self.statuses = collections.Counter()       # (method, route, status)
        self.server_errors = []                     # first 5xx / connection errors
        self.failures = []                          # (method, route, 5xx, lo, hi)
        self.sweep_lags = []                        # seconds until x-short's stats caught up
        self.notes = collections.Counter()

    def problem(self, kind, text):
        with self.lock:
            self.problems[kind].append(text)


def route_of(path):
    """/v2/queues/{q}/messages/{id}: the path's shape, for counting statuses."""
    parts = path.split("?")[0].split("/")
    for i, name in ((3, "{q}"), (5, "{id}")):
        if len(parts) > i:
            parts[i] = name
    return "/".join(parts)


class Api:
    """One thread's HTTP client: records every status, never raises."""

    def __init__(self, url, project, record, clock):
        self.url, self.record, self.clock = url, record, clock
        self.session = requests.Session()
        self.session.headers.update(headers(project=project, client_id=str(uuid.uuid4())))

    def call(self, method, path, **kwargs):
        lo = self.clock.lo()
        try:
            answer = self.session.request(method, self.url + path,
                                          timeout=REQUEST_TIMEOUT, **kwargs)
        except requests.RequestException as error:
            self._count(method, path, "error", repr(error))
            return None, lo, self.clock.hi()
        hi = self.clock.hi()
        self._count(method, path, answer.status_code,
                    answer.text[:300] if answer.status_code >= 500 else None)
        if answer.status_code >= 500:
            with self.record.lock:
                self.record.failures.append((method, route_of(path), answer.status_code, lo, hi))
        return answer, lo, hi

    def _count(self, method, path, status, detail):
        with self.record.lock:
            self.record.statuses[(method, route_of(path), status)] += 1
            if detail is not None and len(self.record.server_errors) < 20:
                self.record.server_errors.append(f"{method} {path} -> {status}: {detail}")

    def list_all(self, queue, pages=500):
        """Every message of the queue (echo, claimed too), by marker; None if a
        page failed."""
        seen, path = [], f"/v2/queues/{queue}/messages?echo=true&include_claimed=true&limit=20"
        for _ in range(pages):
            answer, _, _ = self.call("GET", path)
            if answer is None or answer.status_code != 200:
                return None
            page = answer.json()
            if not page["messages"]:
                return seen
            seen += page["messages"]
            path = page["links"][0]["href"]
        return seen

    def stats(self, queue):
        answer, lo, hi = self.call("GET", f"/v2/queues/{queue}/stats")
        if answer is None or answer.status_code != 200:
            return None, lo, hi
        return answer.json()["messages"], lo, hi


def uid_of(message):
    body = message.get("body")
    return body.get("uid") if isinstance(body, dict) else None


# -- the soak ----------------------------------------------------------------

class Soak:
    def __init__(self, runner, seconds):
        self.runner, self.seconds = runner, seconds
        self.project = f"soak-{uuid.uuid4().hex[:8]}"
        self.clock = ServerClock(runner)
        self.record = Record()
        self.stop = threading.Event()
        self.lull = threading.Event()
        self.deadline = time.monotonic() + seconds
        self.advance_every = min(25.0, max(8.0, seconds / 7))
        self.max_ops = int(seconds * 50)        # per thread, whatever the speed
        self.churn_truth = {}                   # queue -> live Msgs of the last incarnation
        self.churn_counts = collections.Counter()
        self.fresh = []                         # names only ever PUT, DELETEd, PUT

    def api(self):
        return Api(self.runner.url, self.project, self.record, self.clock)

    def running(self):
        return not self.stop.is_set() and time.monotonic() < self.deadline

    def guarded(self, name, target, *args):
        def run():
            try:
                target(*args)
            except Exception:                   # a harness bug: say so, loudly
                self.record.problem("harness: thread crashed", f"{name}: {traceback.format_exc()}")
        return threading.Thread(target=run, name=name, daemon=True)

    # posting, shared by producers and churners
    def post(self, api, queue, ttls, tag, gen=0):
        msgs = [Msg(f"{tag}-{k}", queue, ttl, None, gen) for k, ttl in enumerate(ttls)]
        with self.record.lock:
            self.record.attempted[queue] += len(msgs)
        body = {"messages": [{"body": {"uid": m.uid, "pad": "x" * random.randint(0, 200)},
                              "ttl": m.ttl} for m in msgs]}
        answer, lo, hi = api.call("POST", f"/v2/queues/{queue}/messages", json=body)
        for m in msgs:
            m.p_lo, m.p_hi = lo, hi
        if answer is not None and answer.status_code == 201:
            ids = [href.rsplit("/", 1)[1] for href in answer.json()["resources"]]
            if len(ids) != len(msgs):
                self.record.problem("post answered a wrong number of ids",
                                    f"{queue}: {len(msgs)} posted, {len(ids)} ids")
            for m, mid in zip(msgs, ids):
                m.mid, m.certain = mid, True
        elif answer is not None and answer.status_code < 500:
            self.record.problem("post refused",
                                f"{queue}: {answer.status_code} {answer.text[:200]}")
            msgs = []                           # not posted: nothing to track
        with self.record.lock:
            for m in msgs:
                self.record.messages[m.uid] = m
        return [m for m in msgs if m.certain]

    def producer(self, n):
        api = self.api()
        for i in range(self.max_ops):
            if not self.running():
                return
            queue = random.choice(CLAIMED_QUEUES * 3 + [X_SHORT, X_MIXED])
            count = random.choice([1, 1, 2, 3, 5, 10, 10, 20])
            if queue == X_SHORT:
                ttls = [SHORT_TTL] * count
            elif queue == X_MIXED:
                ttls = [random.choice([SHORT_TTL, LONG_TTL]) for _ in range(count)]
            else:
                ttls = [SHORT_TTL if random.random() < 0.15 else LONG_TTL for _ in range(count)]
            self.post(api, queue, ttls, f"p{n}.{i}")
            time.sleep(random.uniform(0.05, 0.4))

    # claiming
    def claim(self, api, queue, who, limit=CLAIM_LIMIT):
        answer, lo, hi = api.call("POST", f"/v2/queues/{queue}/claims?limit={limit}",
                                  json={"ttl": CLAIM_TTL, "grace": CLAIM_GRACE})
        if answer is None or answer.status_code not in (201, 204):
            if answer is not None and answer.status_code < 500:
                self.record.problem("claim refused",
                                    f"{queue}: {answer.status_code} {answer.text[:200]}")
            return None, []
        if answer.status_code == 204:
            return None, []
        cid = answer.headers["Location"].rsplit("/", 1)[1]
        held = []
        with self.record.lock:
            claim = Claim(cid, queue, lo, hi, [], who)
            for message in answer.json()["messages"]:
                uid = uid_of(message)
                m = self.record.messages.get(uid)
                if m is None or m.queue != queue:
                    self.record.problems[
                        "claim returned a message never posted to its queue"].append(
                        f"claim {cid} on {queue}: id {message['id']} body uid {uid!r}"
                        + (f" (posted to {m.queue})" if m else ""))
                    continue
                if m.mid is not None and m.mid != message["id"]:
                    self.record.problems["claim returned a message under another id"].append(
                        f"{uid}: posted as {m.mid}, claimed as {message['id']}")
                claim.uids.append(uid)
                self.record.deliveries[uid].append(claim)
                held.append((uid, message["id"]))
            self.record.claims.append(claim)
        return claim, held

    def delete(self, api, claim, uid, mid):
        answer, lo, hi = api.call(
            "DELETE", f"/v2/queues/{claim.queue}/messages/{mid}?claim_id={claim.cid}")
        status = answer.status_code if answer is not None else "error"
        with self.record.lock:
            self.record.deletes[uid].append((claim.cid, lo, hi, status))

    def release(self, api, claim):
        lo = self.clock.lo()
        claim.release_lo = lo                   # from the request's start: conservative
        api.call("DELETE", f"/v2/queues/{claim.queue}/claims/{claim.cid}")

    def claimer(self, n):
        api = self.api()
        for _ in range(self.max_ops):
            if not self.running():
                return
            if self.lull.is_set():
                time.sleep(0.2)
                continue
            claim, held = self.claim(api, random.choice(CLAIMED_QUEUES), f"claimer{n}")
            if claim is None:
                time.sleep(random.uniform(0.2, 0.5))
                continue
            fate = random.random()
            if fate < 0.80:
                chosen, then = held, None
            elif fate < 0.88:
                chosen, then = [], "release"
            elif fate < 0.94:
                chosen, then = [], "lapse"
            else:
                chosen, then = held[:len(held) // 2], random.choice(["release", "lapse"])
            for uid, mid in chosen:
                self.delete(api, claim, uid, mid)
            if then == "release":
                self.release(api, claim)
            self.record.notes[f"claims left to {then or 'delete'}"] += 1
            time.sleep(random.uniform(0.05, 0.3))

    # queue churn
    def churner(self, queue, n):
        api = self.api()
        exists, gen, live, old = False, 0, [], set()
        counts = self.churn_counts

        def put(expect_new):
            answer, _, _ = api.call("PUT", f"/v2/queues/{queue}")
            want = 201 if expect_new else 204
            if answer is not None and answer.status_code < 500 and answer.status_code != want:
                self.record.problem("queue PUT answered an unexpected status",
                                    f"{queue} gen {gen}: {answer.status_code}, expected {want}")

        def delete_queue():
            answer, _, _ = api.call("DELETE", f"/v2/queues/{queue}")
            if answer is not None and answer.status_code != 204 and answer.status_code < 500:
                self.record.problem("queue DELETE answered an unexpected status",
                                    f"{queue}: {answer.status_code}")
            old.update(m.uid for m in live)
            live.clear()
            counts["deleted"] += 1

        def verify(step):
            listed = api.list_all(queue)
            if listed is None:
                return
            now_lo = self.clock.lo()
            uids = [uid_of(message) for message in listed]
            stale = [u for u in uids if u in old]
            if stale:
                self.record.problem(
                    "a deleted queue's message reappeared in the queue re-created under its name",
                    f"{queue} gen {gen} after {step}: {len(stale)} old, e.g. {stale[:3]}")
            foreign = [u for u in uids if u not in old and u not in {m.uid for m in live}]
            if foreign:
                self.record.problem("listing showed messages never posted to this incarnation",
                                    f"{queue} gen {gen} after {step}: {foreign[:3]}")
            missing = [m.uid for m in live if m.uid not in uids and m.p_lo + m.ttl > now_lo + 1]
            if missing:
                self.record.problem("a live message is missing from its queue's listing",
                                    f"{queue} gen {gen} after {step}: {missing[:3]}")
            counts["verified"] += 1

        def stats_zero(step):
            """A queue re-created with nothing posted: its stats must reach 0."""
            until = time.monotonic() + 5
            shown = None
            while time.monotonic() < until:
                shown, _, _ = api.stats(queue)
                if shown is not None and shown["total"] == 0:
                    return
                time.sleep(0.5)
            self.record.problem("stats of a queue re-created empty show the old incarnation",
                                f"{queue} gen {gen} after {step}: {shown}")

        def post(ttls):
            live.extend(self.post(api, queue, ttls, f"{queue}.g{gen}.{counts['posts']}", gen))
            counts["posts"] += 1

        for i in range(self.max_ops):
            if not self.running():
                break
            pattern = i % 4
            if pattern == 0:                    # create, post, check, delete
                put(not exists)
                exists = True
                post([LONG_TTL] * random.randint(1, 5))
                verify("PUT+POST")
                delete_queue()
                exists = False
            elif pattern == 1 and i % 8 == 1 and len(self.fresh) < 40:
                # PUT, DELETE, PUT of a name never posted to, left standing:
                # the deleted queue's sweep job then meets a queue at floor 0.
                fresh = f"{queue}-fresh{i}"
                self.fresh.append(fresh)
                for step, want in (("PUT", 201), ("DELETE", 204), ("PUT", 201)):
                    answer, _, _ = api.call(step, f"/v2/queues/{fresh}")
                    if answer is not None and answer.status_code < 500 \
                            and answer.status_code != want:
                        self.record.problem(
                            "queue PUT/DELETE answered an unexpected status",
                            f"{step} {fresh}: {answer.status_code}, expected {want}")
                listed = api.list_all(fresh)
                if listed:
                    self.record.problem("a queue created, deleted and created again is not empty",
                                        f"{fresh}: {[uid_of(m) for m in listed][:3]}")
                counts["put-delete-put (fresh name, left standing)"] += 1
            elif pattern == 1:                  # PUT, DELETE, PUT with nothing posted
                gen += 1
                put(True)
                delete_queue()
                gen += 1
                put(True)
                exists = True
                verify("PUT+DELETE+PUT")
                stats_zero("PUT+DELETE+PUT")
                counts["put-delete-put"] += 1
                delete_queue()
                exists = False
            elif pattern == 2:                  # post to the deleted queue: created on the fly
                gen += 1
                post([LONG_TTL] * random.randint(1, 4) + [SHORT_TTL])
                exists = True
                verify("POST to a deleted queue")
                claim, held = self.claim(api, queue, f"churner{n}", limit=3)
                for uid, mid in held:
                    if uid in old:
                        self.record.problem("a claim returned a deleted queue's message",
                                            f"{queue} gen {gen}: {uid}")
                    else:
                        self.delete(api, claim, uid, mid)
                        live[:] = [m for m in live if m.uid != uid]
                delete_queue()
                exists = False
            else:                               # post, delete, re-create, post again
                gen += 1
                put(True)
                post([LONG_TTL, SHORT_TTL])
                delete_queue()
                gen += 1
                put(True)
                exists = True
                verify("POST+DELETE+PUT")
                post([LONG_TTL] * 2)
                verify("POST+DELETE+PUT+POST")
            time.sleep(random.uniform(0.05, 0.3))
        # End on a live incarnation with a known content: short ones first (so
        # the head sweep can remove them once expired), then long ones.
        if exists:
            delete_queue()
        gen += 1
        put(True)
        post([SHORT_TTL, SHORT_TTL, LONG_TTL, LONG_TTL, LONG_TTL])
        verify("final incarnation")
        self.churn_truth[queue] = (list(live), old)

    # the clock and the sweep
    def definitely_expired(self, m, at):
        """m's latest possible end (stretched by any claim) is before `at`."""
        end = m.p_hi + m.ttl
        for claim in self.record.deliveries.get(m.uid, ()):
            end = max(end, claim.t_hi + CLAIM_TTL + CLAIM_GRACE)
        return end < at

    def live_upper_bound(self, queue, at):
        with self.record.lock:
            gone = sum(1 for m in self.record.messages.values()
                       if m.queue == queue and m.certain and self.definitely_expired(m, at))
            return self.record.attempted[queue] - gone

    def wait_for_sweep(self, api, queue, label):
        """Poll the stats (bounded) until their total is no more than what can
        still be alive; False (and a problem) if the sweep never got there."""
        start = time.monotonic()
        shown = bound = None
        while time.monotonic() - start < SWEEP_WAIT:
            shown, lo, _ = api.stats(queue)
            bound = self.live_upper_bound(queue, lo)
            if shown is not None and shown["total"] <= bound:
                with self.record.lock:
                    self.record.sweep_lags.append(round(time.monotonic() - start, 1))
                return True
            time.sleep(0.5)
        self.record.problem(
            "the sweep did not remove expired messages (stats stay above what can be alive)",
            f"{label}: {queue} stats "
            f"{shown and {k: shown[k] for k in ('total', 'free', 'claimed')}}"
            f", at most {bound} can be alive, after {SWEEP_WAIT} s")
        return False

    def probe(self, api):
        """Ask by id for messages around their expiry; judged after the run."""
        with self.record.lock:
            known = [m for m in self.record.messages.values()
                     if m.certain and m.queue in CLAIMED_QUEUES + [X_SHORT, X_MIXED]]
        by_queue = collections.defaultdict(list)
        for m in random.sample(known, min(len(known), 120)):
            by_queue[m.queue].append(m)
        for queue, msgs in by_queue.items():
            msgs = msgs[:20]
            answer, lo, hi = api.call(
                "GET", f"/v2/queues/{queue}/messages?ids={','.join(m.mid for m in msgs)}")
            if answer is None or answer.status_code not in (200, 404):
                continue
            seen = set() if answer.status_code == 404 else {
                uid_of(message) for message in answer.json()["messages"]}
            with self.record.lock:
                self.record.probes.append((queue, lo, hi, [m.uid for m in msgs], seen))

    def clock_keeper(self):
        api = self.api()
        moves = 0
        next_move = time.monotonic() + self.advance_every
        while self.running() and moves < 100:
            if time.monotonic() >= next_move - LULL:
                self.lull.set()
            if time.monotonic() < next_move:
                time.sleep(0.2)
                continue
            self.clock.advance(ADVANCE_STEP)
            self.lull.clear()
            moves += 1
            self.record.notes["clock moves"] += 1
            self.probe(api)
            self.wait_for_sweep(api, X_SHORT, f"after clock move {moves}")
            self.probe(api)
            next_move = time.monotonic() + self.advance_every
        self.lull.clear()

    # the end
    def drain(self):
        api = self.api()
        until = time.monotonic() + DRAIN_WAIT
        for queue in CLAIMED_QUEUES:
            empty = 0
            for _ in range(2000):
                if time.monotonic() > until:
                    self.record.problem("harness: the drain ran out of time", queue)
                    return
                claim, held = self.claim(api, queue, "drain", limit=20)
                if claim is None:
                    empty += 1
                    if empty == 2:
                        break
                    time.sleep(0.5)
                    continue
                for uid, mid in held:
                    self.delete(api, claim, uid, mid)

    def run(self):
        threads = [self.guarded(f"producer{n}", self.producer, n) for n in range(PRODUCERS)]
        threads += [self.guarded(f"claimer{n}", self.claimer, n) for n in range(CLAIMERS)]
        threads += [self.guarded(f"churner-{q}", self.churner, q, n)
                    for n, q in enumerate(CHURN_QUEUES)]
        threads.append(self.guarded("clock", self.clock_keeper))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(1, self.deadline - time.monotonic()) + 120)
            if thread.is_alive():
                self.record.problem("harness: a thread did not stop", thread.name)
        self.stop.set()
        # Past every claim, and every short ttl even if a claim stretched it.
        self.clock.advance(FINAL_STEP)
        self.drain_lo = self.clock.lo()
        self.drain()
        self.drain_hi = self.clock.hi()
        # Drain claims count as claimed until the end of their minute (README).
        self.clock.advance(ADVANCE_STEP + 60)
        self.end_lo = self.clock.lo()


# -- the checks --------------------------------------------------------------

def check_deliveries(soak):
    """Every message of the claimed queues: consumed once, or expired when its
    ttl says, never both, never lost; tallies what happened."""
    rec, tally = soak.record, collections.Counter()
    for m in rec.messages.values():
        if m.queue not in CLAIMED_QUEUES:
            continue
        if not m.certain:
            tally["posts of unknown outcome"] += 1
            continue
        claims = sorted(rec.deliveries.get(m.uid, []), key=lambda c: c.t_lo)
        deletes = rec.deletes.get(m.uid, [])
        done = [d for d in deletes if d[3] == 204]
        first_done_hi = min((d[2] for d in done), default=None)
        end_hi = m.p_hi + m.ttl              # latest possible expiry so far
        for i, claim in enumerate(claims):
            if claim.t_lo > end_hi:
                rec.problems["a message was claimed after it expired"].append(
                    f"{m.uid} ({m.queue} {m.mid}, ttl {m.ttl}): claim {claim.cid} by {claim.who} "
                    f"{claim.t_lo - end_hi:.1f} s after its latest possible expiry")
            end_hi = max(end_hi, claim.t_hi + CLAIM_TTL + CLAIM_GRACE)
            if first_done_hi is not None and claim.t_lo > first_done_hi:
                rec.problems["a deleted message was delivered again"].append(
                    f"{m.uid} ({m.queue} {m.mid}): deleted (204) by "
                    f"{[d[0] for d in done]}, claimed again by {claim.cid} ({claim.who}) "
                    f"{claim.t_lo - first_done_hi:.1f} s later")
            for earlier in claims[:i]:
                if claim.t_hi < earlier.end_lo():
                    rec.problems["a message was delivered to two live claims at once"].append(
                        f"{m.uid} ({m.queue} {m.mid}): claim {earlier.cid} ({earlier.who}, "
                        f"live until at least +{earlier.end_lo() - earlier.t_lo:.1f} s) and claim "
                        f"{claim.cid} ({claim.who}) {claim.t_lo - earlier.t_lo:.1f} s after it")
        if len(claims) > 1:
            tally["redeliveries after a lapsed or released claim"] += len(claims) - 1
        by_cid = {claim.cid: claim for claim in claims}
        for cid, lo, hi, status in deletes:
            mine = by_cid.get(cid)
            others = [c for c in claims if c.cid != cid and c.t_hi < lo and hi < c.end_lo()]
            if status == 204 and others and not any(d[2] < lo for d in done if d[0] != cid):
                rec.problems[
                    "a stale claim id deleted a message held by another live claim"].append(
                    f"{m.uid} ({m.queue} {m.mid}): deleted with {cid} "
                    f"while {others[0].cid} held it")
            if (status in (400, 403, 404) and mine is not None and hi < mine.end_lo()
                    and not any(d[2] < hi for d in done)):
                rec.problems["a delete with the live claim's id was refused"].append(
                    f"{m.uid} ({m.queue} {m.mid}): {status} with {cid}, "
                    f"{mine.end_lo() - hi:.1f} s before the claim could end")
            if status not in (204, 400, 403, "error") and status < 500:
                rec.problems["a delete answered an unexpected status"].append(
                    f"{m.uid}: {status} with {cid}")
        expired_at_drain = end_hi < soak.drain_lo
        alive_at_drain = (m.p_lo + m.ttl > soak.drain_hi)
        if done:
            tally["consumed"] += 1
            if len(claims) > 1:
                tally["consumed after a redelivery"] += 1
        elif expired_at_drain:
            tally["expired unconsumed"] += 1
            if claims:
                tally["expired after its claims lapsed"] += 1
        elif alive_at_drain:
            moved = any(m.p_lo < after and m.p_hi > before for before, after in soak.clock.moves)
            rec.problems["a message was lost before its ttl (never consumed, not drained)"].append(
                f"{m.uid} ({m.queue} {m.mid}, ttl {m.ttl}): {len(claims)} claims, deletes "
                f"{deletes}; its post (201) took {m.p_hi - m.p_lo:.2f} s"
                + (", during a clock move" if moved else "") + "; at the end: "
                + describe(soak, m))
        else:
            tally["unconsumed, expiry ambiguous"] += 1
    return tally


def describe(soak, m):
    """How the service shows a message now (by id, and in a claim-free list)."""
    api = soak.api()
    answer, _, _ = api.call("GET", f"/v2/queues/{m.queue}/messages/{m.mid}")
    shown = answer.text[:160] if answer is not None else "no answer"
    return f"GET by id -> {answer.status_code if answer is not None else '-'} {shown}"


def check_probes(soak):
    """A message asked for by id is there while alive, and gone once expired."""
    rec, tally = soak.record, collections.Counter()
    for queue, lo, hi, uids, seen in rec.probes:
        for uid in uids:
            m = rec.messages[uid]
            claims = rec.deliveries.get(uid, [])
            end_hi = max([m.p_hi + m.ttl] + [c.t_hi + CLAIM_TTL + CLAIM_GRACE
                                             for c in claims if c.t_lo < hi])
            # A claim that surely outlived the message stretched it (contract
            # section 6); released claims are left out, to be safe.
            end_lo = max([m.p_lo + m.ttl] + [c.t_lo + CLAIM_TTL + CLAIM_GRACE for c in claims
                                             if c.t_hi < lo and c.release_lo is None
                                             and m.p_hi + m.ttl < c.t_lo + CLAIM_TTL])
            touched = any(d[1] < hi for d in rec.deletes.get(uid, []))
            if uid in seen:
                tally["probed: present"] += 1
                if end_hi < lo:
                    rec.problems["a message was readable by id after it expired"].append(
                        f"{uid} ({queue} {m.mid}, ttl {m.ttl}): {lo - end_hi:.1f} s after its "
                        "latest possible expiry")
            else:
                tally["probed: absent"] += 1
                if not touched and end_lo > hi and m.p_hi < lo:
                    rec.problems["a message was missing by id before its ttl"].append(
                        f"{uid} ({queue} {m.mid}, ttl {m.ttl}): {end_lo - hi:.1f} s before "
                        "its earliest possible expiry, never deleted")
    return tally


def final_truth(soak):
    """queue -> (min, max) live messages at the end, and the uids expected."""
    truth, rec = {}, soak.record
    for queue in CLAIMED_QUEUES + [X_SHORT]:
        truth[queue] = ((0, 0), set())
    alive = [m for m in rec.messages.values() if m.queue == X_MIXED and m.ttl == LONG_TTL]
    unknown = sum(1 for m in alive if not m.certain)
    truth[X_MIXED] = ((len(alive) - unknown, len(alive)), {m.uid for m in alive if m.certain})
    for queue in soak.fresh:
        truth[queue] = ((0, 0), set())
    for queue, (live, _) in soak.churn_truth.items():
        kept = {m.uid for m in live if m.ttl == LONG_TTL}
        truth[queue] = ((len(kept), len(kept)), kept)
    return truth


def check_final_state(soak, truth):
    """Stats equal the truth (bounded wait: stream lag, sweep), and each
    queue lists exactly what should be left."""
    api, rec = soak.api(), soak.record
    start, shown = time.monotonic(), {}
    waiting = set(truth)
    while waiting and time.monotonic() - start < SETTLE_WAIT:
        for queue in sorted(waiting):
            stats, _, _ = api.stats(queue)
            if stats is None:
                continue
            shown[queue] = {k: stats[k] for k in ("total", "free", "claimed")}
            (low, high), _ = truth[queue]
            if low <= stats["total"] <= high and stats["claimed"] == 0 \
                    and stats["free"] == stats["total"]:
                waiting.discard(queue)
        if waiting:
            time.sleep(1)
    settled = round(time.monotonic() - start, 1)
    for queue in sorted(waiting):
        (low, high), _ = truth[queue]
        want = low if low == high else f"{low}..{high}"
        rec.problems["final stats differ from the truth"].append(
            f"{queue}: stats {shown.get(queue)}, truth total=free={want} claimed=0 "
            f"(after {SETTLE_WAIT} s)")
    for queue, (_, expected) in sorted(truth.items()):
        listed = api.list_all(queue)
        if listed is None:
            rec.problems["final listing failed"].append(queue)
            continue
        uids = {uid_of(message) for message in listed}
        extra, missing = uids - expected, expected - uids
        if extra:
            rec.problems["final listing shows messages that should be gone"].append(
                f"{queue}: {len(extra)}, e.g. {sorted(extra, key=str)[:3]}")
        if missing:
            rec.problems["final listing misses live messages"].append(
                f"{queue}: {len(missing)}, e.g. {sorted(missing)[:3]}")
    return shown, settled


def summarize_log(lines, limit):
    """Distinct errors, most frequent first: each traceback as the log line
    before it and its last line (the exception), with timestamps and request
    ids left out so repeats count together."""
    found = collections.Counter()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("Traceback"):
            header = lines[i - 1] if i and not lines[i - 1].startswith((" ", "Traceback")) else ""
            chained = ("During handling", "The above exception")
            j, last = i + 1, ""
            while j < len(lines):           # to the last exception of a chain
                if lines[j].startswith((" ", "Traceback") + chained) or not lines[j].strip():
                    j += 1
                    continue
                last, k = lines[j], j + 1
                while k < len(lines) and not lines[k].strip():
                    k += 1
                if k < len(lines) and lines[k].startswith(chained):
                    j = k
                    continue
                break
            found[(header, last)] += 1
            i = j + 1
            continue
        if re.search(r"HTTP/1\.\d 5\d\d ", line) or "ERROR" in line:
            found[(line, "")] += 1
        i += 1
    def clean(text):
        text = re.sub(r"^\d{4}-\d\d-\d\d [\d:,]+ ", "", text)
        return re.sub(r"request \([0-9a-f-]{36}\)", "request (...)", text)[:240]
    merged = collections.Counter()
    for (header, last), count in found.items():
        merged[(clean(header), clean(last))] += count
    out = [f"({sum(merged.values())} errors in {len(lines)} log lines, {len(merged)} distinct)"]
    for (header, last), count in merged.most_common(limit):
        out.append(f"{count} x {header}" + (f"\n        -> {last}" if last else ""))
    return out


def runner_log_errors(port, limit=12):
    """The runner's log lines about errors (its stdout is the fixture's temp
    file, still open as the process's fd 1)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"local.runner" in command and str(port).encode() in command:
            try:
                lines = Path(f"/proc/{pid}/fd/1").read_text(errors="replace").splitlines()
            except OSError as error:
                return [f"(runner log unreadable: {error})"]
            return summarize_log(lines, limit)
    return ["(runner process not found)"]


def test_soak(local_runner):
    seconds = float(SOAK_SECONDS)
    soak = Soak(local_runner, seconds)
    started = time.monotonic()
    soak.run()
    delivered = check_deliveries(soak)
    probed = check_probes(soak)
    truth = final_truth(soak)
    shown, settled = check_final_state(soak, truth)
    rec = soak.record

    by_status = collections.Counter()
    for (_method, _route, status), count in rec.statuses.items():
        by_status[status] += count
    server_errors = sum(c for s, c in by_status.items() if s == "error" or s >= 500)
    unavailable = by_status.get(503, 0)
    # A 503 from a post whose write window (10 s by the app's clock) a clock
    # move of 61 s swallowed is the harness's doing: reported, not failed.
    def during_move(lo, hi):
        return any(lo < after and hi > before for before, after in soak.clock.moves)
    excused = [f for f in rec.failures
               if f[2] == 503 and f[0] == "POST" and f[1].endswith("/messages")
               and during_move(f[3], f[4])]
    if server_errors > len(excused):
        failing = collections.Counter()
        for (method, route, status), count in rec.statuses.items():
            if status == "error" or status >= 500:
                failing[f"{method} {route} -> {status}"] += count
        rec.problems["the service answered 5xx (or dropped the connection)"].append(
            f"{server_errors} in all, 503: {unavailable} ({len(excused)} posts cut short by a "
            f"clock move); {dict(failing)}; first: " + " | ".join(rec.server_errors[:5]))

    posted = collections.Counter(m.queue for m in rec.messages.values() if m.certain)
    lines = [
        "", "=" * 78,
        f"SOAK {seconds:.0f} s (total {time.monotonic() - started:.0f} s), project {soak.project}, "
        f"clock moved {soak.clock.ahead:.0f} s in all",
        f"requests {sum(by_status.values())} by status {dict(sorted(by_status.items(), key=str))}",
        f"5xx/connection errors {server_errors}, of which 503: {unavailable}, of which "
        f"{len(excused)} posts whose write window a clock move cut short (not failed)",
        f"messages posted: {sum(posted.values())} ({dict(sorted(posted.items()))})",
        f"claimed queues: {dict(delivered)}",
        f"claims {len(rec.claims)}; {dict(rec.notes)}",
        f"probes by id: {dict(probed)}",
        f"sweep caught up after clock moves in (s): {rec.sweep_lags}",
        f"churn: {dict(soak.churn_counts)}",
        f"final stats total/free/claimed (settled after {settled} s), truth total:",
    ]
    for queue in sorted(truth):
        if queue in soak.fresh and shown.get(queue, {}).get("total") == 0:
            continue
        stats = shown.get(queue)
        (low, high), _ = truth[queue]
        lines.append(f"    {queue}: "
                     + (f"{stats['total']}/{stats['free']}/{stats['claimed']}" if stats else "-")
                     + f", truth {low if low == high else f'{low}..{high}'}")
    lines += [
        f"    ({len(soak.fresh)} fresh PUT/DELETE/PUT queues, those at 0 not shown)",
    ]
    if rec.problems:
        lines.append(f"PROBLEMS ({sum(len(v) for v in rec.problems.values())}):")
        for kind, examples in rec.problems.items():
            lines.append(f"* {kind}: {len(examples)}")
            lines += [f"    - {example}" for example in examples[:EXAMPLES]]
        lines.append("runner log, errors:")
        lines += [f"    {line[:300]}" for line in runner_log_errors(local_runner.port)]
    else:
        lines.append("no problems")
    lines.append("=" * 78)
    report = "\n".join(lines)
    if rec.problems:
        pytest.fail(report, pytrace=False)
    print(report)

"""Messages: batch post, reading, listing, deleting and popping."""
import pytest

from chalicelib.actions import claims, messages, queues
from chalicelib.errors import BadRequest, Forbidden, NotFound, ServiceUnavailable
from contract.support import context, post

OTHER_CLIENT = "9f0b5a1e-6f6b-4f53-9d52-0d7f3c2a1b44"


def list_all(ctx, queue, **options):
    """Every page of a listing, following markers; bodies' "n" in order."""
    seen, marker = [], None
    while True:
        found, marker, _ = messages.list_messages(ctx, queue, marker=marker, **options)
        if not found:
            return seen
        seen += [m.body["n"] for m in found]


def test_batch_post_takes_consecutive_positions_in_order(ctx):
    # 60 messages need three BatchWriteItem calls: DynamoDB takes 25 at most.
    ids = post(ctx, "q", 60)
    assert len(set(ids)) == 60
    positions = [int(message_id, 16) for message_id in ids]
    assert positions == list(range(positions[0], positions[0] + 60))
    later = post(ctx, "q", 2, start=60)
    assert int(later[0], 16) == positions[-1] + 1
    assert [m.body["n"] for m in messages.get_many(ctx, "q", ids[-20:])] == list(range(40, 60))
    assert list_all(ctx, "q", echo=True, limit=20) == list(range(62))


def test_post_keeps_body_ttl_and_creates_the_queue(ctx):
    bodies = [{"nested": {"list": [1, 2.5, None]}}, "text", 7, [True, False]]
    ids = messages.post(ctx, "new-q", {"messages": [
        {"body": body, "ttl": 120 + i, "ignored": 1} for i, body in enumerate(bodies)]})
    assert queues.get(ctx, "new-q") == {}
    got = [messages.get(ctx, "new-q", message_id) for message_id in ids]
    assert [(m.body, m.ttl, m.age) for m in got] == [
        (body, 120 + i, 0) for i, body in enumerate(bodies)]


def test_get_many_skips_unknown_and_malformed_ids(ctx):
    ids = post(ctx, "q", 3)
    unknown = f"{int(ids[-1], 16) + 1000:016x}"
    found = messages.get_many(ctx, "q", [ids[2], "bogus", unknown, ids[0], ids[2]])
    assert [m.body["n"] for m in found] == [2, 0]
    with pytest.raises(NotFound):
        messages.get_many(ctx, "q", [unknown, "bogus"])
    with pytest.raises(NotFound):
        messages.get(ctx, "q", unknown)
    with pytest.raises(NotFound):
        messages.get(ctx, "other-q", ids[0])


def test_list_pages_follow_markers_without_repeats(ctx):
    post(ctx, "q", 25)
    first, marker, _ = messages.list_messages(ctx, "q", limit=10, echo=True)
    second, marker, _ = messages.list_messages(ctx, "q", marker=marker, limit=10, echo=True)
    third, marker, _ = messages.list_messages(ctx, "q", marker=marker, limit=10, echo=True)
    last, _, _ = messages.list_messages(ctx, "q", marker=marker, limit=10, echo=True)
    assert [[m.body["n"] for m in page] for page in (first, second, third, last)] == [
        list(range(10)), list(range(10, 20)), list(range(20, 25)), []]


def test_list_leaves_out_own_messages_unless_echo(ctx):
    post(ctx, "q", 2)
    post(context(ctx.project, ctx.settings, OTHER_CLIENT), "q", 2, start=10)
    assert list_all(ctx, "q") == [10, 11]
    assert list_all(ctx, "q", echo=True) == [0, 1, 10, 11]
    assert list_all(context(ctx.project, ctx.settings, OTHER_CLIENT), "q") == [0, 1]


def test_list_shows_claimed_messages_only_when_asked(ctx):
    post(ctx, "q", 5)
    claim_id, _ = claims.create(ctx, "q", {"ttl": 300}, limit=3)
    assert list_all(ctx, "q", echo=True) == [3, 4]
    found, _, _ = messages.list_messages(ctx, "q", echo=True, include_claimed=True)
    assert [(m.body["n"], m.claim_id) for m in found] == [
        (0, claim_id), (1, claim_id), (2, claim_id), (3, None), (4, None)]


def test_delayed_messages_are_hidden_until_due(ctx, clock):
    queues.create(ctx, "q", {"_default_message_delay": 30})
    messages.post(ctx, "q", {"messages": [{"body": {"n": 0}},
                                          {"body": {"n": 1}, "delay": 0}]})
    assert list_all(ctx, "q", echo=True) == [1]
    assert list_all(ctx, "q", echo=True, include_delayed=True) == [0, 1]
    _, taken = claims.create(ctx, "q", {"ttl": 60}, limit=10)
    assert [m.body["n"] for m in taken] == [1]
    clock.advance(31)
    assert list_all(ctx, "q", echo=True) == [0]
    _, taken = claims.create(ctx, "q", {"ttl": 60}, limit=10)
    assert [m.body["n"] for m in taken] == [0]


def test_delay_is_dropped_on_queues_without_a_default_delay(ctx):
    messages.post(ctx, "q", {"messages": [{"body": {"n": 0}, "delay": 300}]})
    assert list_all(ctx, "q", echo=True) == [0]


def test_bogus_marker_and_missing_queue_list_nothing(ctx):
    post(ctx, "q", 3)
    assert messages.list_messages(ctx, "q", marker="not-a-marker", echo=True)[0] == []
    assert messages.list_messages(ctx, "missing", echo=True)[0] == []


def test_expired_messages_disappear(ctx, clock):
    ids = post(ctx, "q", 2, ttl=60)
    post(ctx, "q", 1, start=2, ttl=120)
    clock.advance(61)
    with pytest.raises(NotFound):
        messages.get(ctx, "q", ids[0])
    assert list_all(ctx, "q", echo=True) == [2]
    assert list_all(ctx, "q", echo=True, include_claimed=True) == [2]
    _, taken = claims.create(ctx, "q", {"ttl": 60}, limit=10)
    assert [m.body["n"] for m in taken] == [2]


def test_delete_honours_claims(ctx, clock):
    ids = post(ctx, "q", 4)
    claim_id, _ = claims.create(ctx, "q", {"ttl": 60}, limit=2)
    other_claim, _ = claims.create(ctx, "q", {"ttl": 60}, limit=1)
    free = ids[3]

    messages.delete(ctx, "q", free)  # not claimed, no claim id
    with pytest.raises(NotFound):
        messages.get(ctx, "q", free)
    messages.delete(ctx, "q", free)  # already gone: not an error
    with pytest.raises(Forbidden):
        messages.delete(ctx, "q", ids[0])  # claimed, no claim id
    with pytest.raises(Forbidden):
        messages.delete(ctx, "q", ids[0], other_claim)  # another live claim
    with pytest.raises(BadRequest, match="does not exist or has expired"):
        messages.delete(ctx, "q", ids[0], "0" * 20)
    with pytest.raises(BadRequest, match="does not exist or has expired"):
        messages.delete(ctx, "q", ids[0], "malformed")
    messages.delete(ctx, "q", ids[0], claim_id)
    with pytest.raises(NotFound):
        messages.get(ctx, "q", ids[0])

    clock.advance(61)  # both claims have expired
    with pytest.raises(BadRequest, match="does not exist or has expired"):
        messages.delete(ctx, "q", ids[1], claim_id)
    messages.delete(ctx, "q", ids[1])  # its claim expired: free to delete
    live_claim, taken = claims.create(ctx, "q", {"ttl": 60}, limit=5)
    assert [m.id for m in taken] == [ids[2]]
    unclaimed = post(ctx, "q", 1)[0]
    with pytest.raises(BadRequest, match="not currently claimed"):
        messages.delete(ctx, "q", unclaimed, live_claim)


def test_bulk_delete_ignores_claims_and_unknown_ids(ctx):
    ids = post(ctx, "q", 4)
    claims.create(ctx, "q", {"ttl": 300}, limit=2)
    messages.delete_many(ctx, "q", [ids[0], ids[2], "bogus", "0" * 16])
    assert [m.body["n"] for m in messages.get_many(ctx, "q", ids)] == [1, 3]
    messages.delete_many(ctx, "missing-q", ids)


def test_pop_removes_oldest_free_messages(ctx):
    ids = post(ctx, "q", 6)
    claims.create(ctx, "q", {"ttl": 300}, limit=2)
    popped = messages.pop_messages(ctx, "q", 3)
    assert [m.body["n"] for m in popped] == [2, 3, 4]
    assert [m.body["n"] for m in messages.get_many(ctx, "q", ids)] == [0, 1, 5]
    assert [m.body["n"] for m in messages.pop_messages(ctx, "q", 5)] == [5]
    assert messages.pop_messages(ctx, "q", 5) == []
    assert messages.pop_messages(ctx, "missing-q", 5) == []


def test_list_page_never_repeats_a_message(ctx, clock):
    # The default view (no claimed, no delayed) applies only to queues with a
    # default delay; other queues always include delayed messages.
    queues.create(ctx, "q", {"_default_message_delay": 10})
    ids = post(ctx, "q", 6, delay=0)
    messages.delete_many(ctx, "q", ids[:1])  # a gap where the cursor starts
    claims.create(ctx, "q", {"ttl": 60}, limit=5)
    clock.advance(61)
    found, _, _ = messages.list_messages(ctx, "q", echo=True, limit=10)
    assert [m.body["n"] for m in found] == [1, 2, 3, 4, 5]


def _slow_post(ctx, clock, monkeypatch, meanwhile):
    """Post 3 messages whose write takes 11 s, past the post's 10 s window,
    with `meanwhile()` run once the messages are written; returns the post's
    ids, or the error it raised."""
    from chalicelib.storage import messages as store
    real_write, done = store.batch_write, []

    def slow_write(items=(), deletes=()):
        real_write(items=items, deletes=deletes)
        if items and not done:
            done.append(1)
            clock.advance(11)
            meanwhile()
    monkeypatch.setattr(store, "batch_write", slow_write)
    try:
        return post(ctx, "q", 3)
    except ServiceUnavailable as error:
        return error
    finally:
        monkeypatch.setattr(store, "batch_write", real_write)


def test_a_post_that_outlives_its_window_is_refused_once_a_claimer_passed_it(
        ctx, clock, monkeypatch):
    """A claimer that comes after the post's deadline takes it for dead and
    moves the cursor past it; the post must then not show its messages
    (behind the cursor they could never be claimed) but undo and say so."""
    queues.create(ctx, "q", {})
    outcome = _slow_post(ctx, clock, monkeypatch,
                         lambda: claims.create(ctx, "q", {"ttl": 60}, limit=10))
    assert isinstance(outcome, ServiceUnavailable)
    found, _, _ = messages.list_messages(ctx, "q", echo=True, include_claimed=True)
    assert found == []
    post(ctx, "q", 2, start=10)
    _, taken = claims.create(ctx, "q", {"ttl": 60}, limit=10)
    assert [m.body["n"] for m in taken] == [10, 11]


def test_a_post_that_commits_late_is_not_left_behind_the_cursor(ctx, clock, monkeypatch):
    """A claimer that read the post as dead, but writes its cursor only after
    the post committed, must not move the cursor past the committed messages."""
    from chalicelib.storage import claims as claim_store
    from chalicelib.storage import messages as store
    queues.create(ctx, "q", {})
    real_set_hints = claim_store._set_hints

    def commit_first(pq, state, *args, **kwargs):
        for token in kwargs.get("abandoned") or ():
            store.commit_batch(pq, token)  # the post's commit lands just now
        return real_set_hints(pq, state, *args, **kwargs)
    monkeypatch.setattr(claim_store, "_set_hints", commit_first)
    ids = _slow_post(ctx, clock, monkeypatch,
                     lambda: claims.create(ctx, "q", {"ttl": 60}, limit=10))
    monkeypatch.setattr(claim_store, "_set_hints", real_set_hints)
    assert len(ids) == 3
    _, taken = claims.create(ctx, "q", {"ttl": 60}, limit=10)
    assert [m.id for m in taken] == ids

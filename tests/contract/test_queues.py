"""Queues: conditional create, metadata updates, listing, and incarnations."""
import pytest

from chalicelib.actions import claims, messages, queues
from chalicelib.errors import NotFound
from contract.support import post


def test_create_is_conditional(ctx):
    assert queues.create(ctx, "q", {"colour": "red"}) is True
    assert queues.create(ctx, "q", {"colour": "blue"}) is False
    assert queues.get(ctx, "q") == {"colour": "red"}


def test_missing_queue_reads_as_absent(ctx, store):
    assert queues.get(ctx, "nothing-here") == {}
    assert store.queues.get_with_floor(ctx.project, "nothing-here") == (None, None)
    with pytest.raises(NotFound):
        queues.patch(ctx, "nothing-here",
                     [{"op": "add", "path": "/metadata/a", "value": 1}])


def test_patch_changes_metadata(ctx):
    queues.create(ctx, "q", {"a": 1, "b": 2})
    shown = queues.patch(ctx, "q", [
        {"op": "replace", "path": "/metadata/a", "value": 10},
        {"op": "remove", "path": "/metadata/b"},
        {"op": "add", "path": "/metadata/c", "value": [1, 2]}])
    assert shown["a"] == 10 and shown["c"] == [1, 2] and "b" not in shown
    assert queues.get(ctx, "q") == {"a": 10, "c": [1, 2]}


def test_concurrent_metadata_update_is_not_lost(ctx, store):
    """A writer that sneaks in between another's read and write makes that
    write fail its condition; the loser re-reads and applies its change on
    top, so both changes survive."""
    queues.create(ctx, "q", {})
    calls = []

    def slow_change(metadata):
        calls.append(dict(metadata))
        if len(calls) == 1:
            store.queues.update_metadata(ctx.project, "q", lambda m: {**m, "other": True})
        return {**metadata, "mine": True}

    store.queues.update_metadata(ctx.project, "q", slow_change)
    assert queues.get(ctx, "q") == {"other": True, "mine": True}
    assert calls == [{}, {"other": True}]


def test_list_queues_pages_in_name_order_with_filters(ctx):
    for name in ["q-c", "q-a", "other", "q-b"]:
        queues.create(ctx, name, {"kind": "x" if name != "q-b" else "y"})
    page, _ = queues.list_queues(ctx, limit=2)
    assert [q["name"] for q in page] == ["other", "q-a"]
    page, count = queues.list_queues(ctx, marker="q-a", limit=2, with_count=True)
    assert [q["name"] for q in page] == ["q-b", "q-c"]
    assert count == 4
    assert queues.list_queues(ctx, marker="q-c")[0] == []
    page, _ = queues.list_queues(ctx, name="q-", detailed=True,
                                 metadata_filters={"kind": "x"})
    assert [(q["name"], q["metadata"]["kind"]) for q in page] == [("q-a", "x"), ("q-c", "x")]


def test_recreated_queue_shows_no_old_message(ctx):
    old_ids = post(ctx, "q", 30)
    claims.create(ctx, "q", {"ttl": 300}, limit=5)
    queues.delete(ctx, "q")
    assert queues.get(ctx, "q") == {}

    new_ids = post(ctx, "q", 3, start=1000)
    assert not set(new_ids) & set(old_ids)
    found, _, _ = messages.list_messages(ctx, "q", limit=20, echo=True,
                                         include_claimed=True)
    assert [m.body["n"] for m in found] == [1000, 1001, 1002]
    found, _, _ = messages.list_messages(ctx, "q", limit=20, echo=True)
    assert [m.body["n"] for m in found] == [1000, 1001, 1002]
    with pytest.raises(NotFound):
        messages.get(ctx, "q", old_ids[-1])
    with pytest.raises(NotFound):
        messages.get_many(ctx, "q", old_ids[-20:])
    _, taken = claims.create(ctx, "q", {"ttl": 300}, limit=20)
    assert [m.body["n"] for m in taken] == [1000, 1001, 1002]


def test_claim_of_deleted_queue_is_gone_when_queue_is_recreated(ctx):
    post(ctx, "q", 5)
    old_claim, _ = claims.create(ctx, "q", {"ttl": 300}, limit=5)
    queues.delete(ctx, "q")
    queues.create(ctx, "q", {})
    with pytest.raises(NotFound):
        claims.get(ctx, "q", old_claim)


def test_queue_facts_kept_warm_follow_every_change(ctx, store):
    """Message requests keep their queue's facts as last read instead of
    reading the queue each time; a change made since (by this function or
    another: none tells the others) is seen by the very next request."""
    post(ctx, "q", 2)
    assert len(claims.create(ctx, "q", {"ttl": 60}, limit=1)[1]) == 1
    queues.patch(ctx, "q", [{"op": "add", "path": "/metadata/_default_message_ttl",
                             "value": 120}])
    post(ctx, "q", 1)
    found, _, _ = messages.list_messages(ctx, "q", echo=True)
    assert sorted(message.ttl for message in found) == [120, 3600]

    queues.purge(ctx, "q")
    assert claims.create(ctx, "q", {"ttl": 60})[1] == []
    assert messages.list_messages(ctx, "q", echo=True)[0] == []

    post(ctx, "q", 1)
    store.queues.delete(ctx.project, "q")
    post(ctx, "q", 1)  # creates the queue again, as a post on no queue does
    assert store.queues.get_with_floor(ctx.project, "q")[0] == {}
    assert len(messages.list_messages(ctx, "q", echo=True)[0]) == 1
    store.queues.delete(ctx.project, "q")
    assert claims.create(ctx, "q", {"ttl": 60}) == (None, [])

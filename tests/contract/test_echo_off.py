"""Listing with echo off behind the caller's own messages: a producer that
lists sees the others' messages, in order, page after page, however many of
its own lie before them, and does not read its own to leave them out."""
import json

import pytest

from chalicelib.actions import claims, messages
from chalicelib.storage.models import MESSAGE_PREFIX, MessageRecord
from contract.support import context, post

OTHER_CLIENT = "9f0b5a1e-6f6b-4f53-9d52-0d7f3c2a1b44"


def pages(ctx, queue, **options):
    """The bodies' "n" of each page of a listing, following next markers as
    the REST layer links them (a page with messages has a next link)."""
    seen, marker = [], None
    while True:
        found, marker, _ = messages.list_messages(ctx, queue, marker=marker, **options)
        if not found:
            return seen
        seen.append([m.body["n"] for m in found])


def test_pages_between_own_runs_keep_order_and_markers(ctx):
    other = context(ctx.project, ctx.settings, OTHER_CLIENT)
    post(ctx, "q", 30)
    post(other, "q", 3, start=100)
    post(ctx, "q", 25, start=30)
    post(other, "q", 2, start=103)
    post(ctx, "q", 12, start=55)
    assert pages(ctx, "q", limit=2) == [[100, 101], [102, 103], [104]]
    assert sum(pages(other, "q", limit=20), []) == list(range(67))
    everything = list(range(30)) + [100, 101, 102] + list(range(30, 55)) + [103, 104] \
        + list(range(55, 67))
    assert sum(pages(ctx, "q", limit=20, echo=True), []) == everything


def test_claimed_messages_of_others_show_with_include_claimed(ctx):
    other = context(ctx.project, ctx.settings, OTHER_CLIENT)
    post(ctx, "q", 18)
    post(other, "q", 3, start=100)
    post(ctx, "q", 40, start=18)
    post(other, "q", 1, start=103)
    claim_id, taken = claims.create(ctx, "q", {"ttl": 300}, limit=20)
    assert [m.body["n"] for m in taken][-2:] == [100, 101]
    assert pages(ctx, "q", limit=20) == [[102, 103]]
    found, _, _ = messages.list_messages(ctx, "q", limit=20, include_claimed=True)
    assert [(m.body["n"], m.claim_id) for m in found] == [
        (100, claim_id), (101, claim_id), (102, None), (103, None)]


def test_next_marker_past_own_messages_misses_no_later_post(ctx):
    other = context(ctx.project, ctx.settings, OTHER_CLIENT)
    post(other, "q", 1, start=100)
    post(ctx, "q", 30)
    found, marker, _ = messages.list_messages(ctx, "q", limit=20)
    assert [m.body["n"] for m in found] == [100]
    # The caller posts again (its run goes on), then the other client does.
    post(ctx, "q", 15, start=30)
    post(other, "q", 1, start=101)
    post(ctx, "q", 12, start=45)
    found, marker, _ = messages.list_messages(ctx, "q", marker=marker, limit=20)
    assert [m.body["n"] for m in found] == [101]
    found, _, _ = messages.list_messages(ctx, "q", marker=marker, limit=20)
    assert found == []
    assert sum(pages(other, "q", limit=20), []) == list(range(57))


@pytest.fixture
def message_items_read(backend):
    """How many message items the Queries of message ranges read (a list
    that the test empties to start counting)."""
    client = MessageRecord._get_connection().connection.client
    read = []

    def before_call(model, params, context, **_):
        values = json.loads(params.get("body") or b"{}").get("ExpressionAttributeValues", {})
        context["reads_messages"] = (model.name == "Query" and any(
            value.get("S", "").startswith(MESSAGE_PREFIX) for value in values.values()))

    def after_call(parsed, context, **_):
        if context.get("reads_messages"):
            read.append(parsed.get("ScannedCount", 0))

    client.meta.events.register("before-call.dynamodb", before_call)
    client.meta.events.register("after-call.dynamodb", after_call)
    yield read
    client.meta.events.unregister("before-call.dynamodb", before_call)
    client.meta.events.unregister("after-call.dynamodb", after_call)


def test_others_messages_show_behind_more_own_messages_than_a_page_reads(
        ctx, message_items_read):
    # More than a listing reads in one request (1,000 records): before runs
    # were passed, the first page came back empty and the listing ended there.
    # The caller's own are passed, not read. One queue of 1,100 messages for
    # both checks: posting them takes seconds on DynamoDB Local.
    post(ctx, "q", 600)
    post(ctx, "q", 500, start=600)
    message_items_read.clear()
    # The latest run is the caller's: its messages are not read at all.
    assert messages.list_messages(ctx, "q", limit=20)[0] == []
    assert sum(message_items_read) == 0
    other = context(ctx.project, ctx.settings, OTHER_CLIENT)
    post(other, "q", 2, start=5000)
    message_items_read.clear()
    # An earlier run: looked up after one page of them (45 records at most).
    found, _, _ = messages.list_messages(ctx, "q", limit=20)
    assert [m.body["n"] for m in found] == [5000, 5001]
    assert sum(message_items_read) <= 45 + 2
    assert pages(ctx, "q", limit=20) == [[5000, 5001]]
    assert pages(ctx, "q", limit=20, include_claimed=True) == [[5000, 5001]]
    seen = pages(other, "q", limit=20)
    assert sum(seen, []) == list(range(1100)) and len(seen) == 55

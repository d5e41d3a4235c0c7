"""Keys a client supplies (ids, markers) reach DynamoDB, which refuses a sort
key over 1,024 bytes with a ValidationException: storage must answer for
them as for any id that names nothing, never as a failure to retry. Only
DynamoDB Local enforces the limit (moto does not)."""
import pytest

from chalicelib.actions import claims, messages, queues, subscriptions
from chalicelib.errors import NotFound
from contract.support import post

LONG = "x" * 2000


@pytest.fixture
def subscribed(ctx):
    post(ctx, "q", 1)
    subscription_id, _ = subscriptions.create(
        ctx, "q", {"subscriber": "mailto:a@example.com", "ttl": 3600})
    return subscription_id


def test_a_subscription_id_too_long_to_be_a_key_names_none(ctx, subscribed):
    with pytest.raises(NotFound):
        subscriptions.get(ctx, "q", LONG)
    with pytest.raises(NotFound):
        subscriptions.update(ctx, "q", LONG, {"ttl": 3600})
    with pytest.raises(NotFound):
        subscriptions.confirm(ctx, "q", LONG, {"confirmed": True})
    subscriptions.delete(ctx, "q", LONG)
    assert subscriptions.get(ctx, "q", subscribed).id == subscribed


def test_a_subscription_marker_longer_than_any_id_pages_as_its_prefix_would(ctx, subscribed):
    assert subscriptions.list_subscriptions(ctx, "q", marker=LONG) == []
    assert [s.id for s in subscriptions.list_subscriptions(ctx, "q", marker="0" * 2000)] == [
        subscribed]


def test_a_queue_marker_longer_than_any_name_pages_as_its_prefix_would(ctx):
    for name in ("a", "ab", "b"):
        queues.create(ctx, name, {})
    for marker, names in ((LONG, []), ("a" * 2000, ["ab", "b"]), ("a" + LONG, ["b"])):
        page, _ = queues.list_queues(ctx, marker=marker)
        assert [queue["name"] for queue in page] == names


def test_message_and_claim_ids_too_long_name_none(ctx):
    post(ctx, "q", 1)
    found, _, _ = messages.list_messages(ctx, "q", marker=LONG, echo=True)
    assert found == []
    with pytest.raises(NotFound):
        messages.get(ctx, "q", LONG)
    with pytest.raises(NotFound):
        claims.get(ctx, "q", LONG)

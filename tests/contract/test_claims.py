"""Claims: create, get, renew, release, exclusivity and expiry."""
import pytest

from chalicelib import clock as service_clock
from chalicelib.actions import claims, messages, queues
from chalicelib.errors import BadRequest, NotFound
from chalicelib.storage.models import STATE_KEY, QueueState, queue_key
from contract.support import post


def bodies(found):
    return [m.body["n"] for m in found]


def test_claim_takes_oldest_free_messages(ctx, clock):
    ids = post(ctx, "q", 5)
    claim_id, taken = claims.create(ctx, "q", {"ttl": 120, "grace": 60}, limit=3)
    assert [m.id for m in taken] == ids[:3]
    assert all(m.claim_id == claim_id for m in taken)
    clock.advance(30)
    age, ttl, held = claims.get(ctx, "q", claim_id)
    assert (age, ttl, [m.id for m in held]) == (30, 120, ids[:3])
    assert messages.get(ctx, "q", ids[0]).claim_id == claim_id
    assert messages.get(ctx, "q", ids[3]).claim_id is None


def test_claims_never_share_a_message(ctx):
    ids = post(ctx, "q", 25)
    results = [claims.create(ctx, "q", {"ttl": 300}, limit=10) for _ in range(4)]
    taken = [[m.id for m in found] for _, found in results]
    assert [len(found) for found in taken] == [10, 10, 5, 0]
    assert sorted(sum(taken, [])) == ids
    assert len({claim_id for claim_id, found in results if found}) == 3


def test_nothing_to_claim(ctx):
    assert claims.create(ctx, "missing-q", {"ttl": 60}) == (None, [])
    post(ctx, "q", 1)
    claims.create(ctx, "q", {"ttl": 60})
    assert claims.create(ctx, "q", {"ttl": 60})[1] == []


def test_claim_defaults(ctx):
    post(ctx, "q", 12)
    claim_id, taken = claims.create(ctx, "q")
    assert len(taken) == 10
    assert claims.get(ctx, "q", claim_id)[1] == 300


def test_claimed_message_lives_until_claim_ends_plus_grace(ctx, clock):
    short, long_lived = post(ctx, "q", 1, ttl=60) + post(ctx, "q", 1, start=1, ttl=3600)
    _, taken = claims.create(ctx, "q", {"ttl": 120, "grace": 60}, limit=2)
    assert [m.ttl for m in taken] == [180, 3600]
    clock.advance(150)  # the claim has ended; the grace keeps the message
    kept = messages.get(ctx, "q", short)
    assert (kept.ttl, kept.claim_id) == (180, None)
    clock.advance(31)
    with pytest.raises(NotFound):
        messages.get(ctx, "q", short)
    assert messages.get(ctx, "q", long_lived).ttl == 3600


def test_renew_restarts_the_claim(ctx, clock):
    ids = post(ctx, "q", 3, ttl=120)
    claim_id, _ = claims.create(ctx, "q", {"ttl": 60, "grace": 60}, limit=2)
    clock.advance(30)
    claims.update(ctx, "q", claim_id, {"ttl": 120, "grace": 60})
    age, ttl, held = claims.get(ctx, "q", claim_id)
    assert (age, ttl, [m.id for m in held]) == (0, 120, ids[:2])
    assert messages.get(ctx, "q", ids[0]).ttl == 180

    clock.advance(60)  # past the claim's first expiry: still held
    assert claims.get(ctx, "q", claim_id)[0] == 60
    assert bodies(claims.create(ctx, "q", {"ttl": 300}, limit=5)[1]) == [2]
    messages.delete(ctx, "q", ids[0], claim_id)

    clock.advance(61)  # past the renewed expiry
    with pytest.raises(NotFound):
        claims.get(ctx, "q", claim_id)
    with pytest.raises(NotFound):
        claims.update(ctx, "q", claim_id, {"ttl": 60})
    assert bodies(claims.create(ctx, "q", {"ttl": 60}, limit=5)[1]) == [1]


def test_release_frees_messages_at_once(ctx):
    ids = post(ctx, "q", 3)
    claim_id, _ = claims.create(ctx, "q", {"ttl": 300}, limit=2)
    claims.delete(ctx, "q", claim_id)
    claims.delete(ctx, "q", claim_id)  # releasing twice is fine
    claims.delete(ctx, "q", "0" * 20)  # so is an unknown claim
    with pytest.raises(NotFound):
        claims.get(ctx, "q", claim_id)
    with pytest.raises(BadRequest, match="does not exist or has expired"):
        messages.delete(ctx, "q", ids[0], claim_id)
    assert messages.get(ctx, "q", ids[0]).claim_id is None
    again, taken = claims.create(ctx, "q", {"ttl": 300}, limit=5)
    assert [m.id for m in taken] == ids
    messages.delete(ctx, "q", ids[0], again)


def test_expired_claim_gives_its_messages_back(ctx, clock):
    ids = post(ctx, "q", 4)
    claim_id, _ = claims.create(ctx, "q", {"ttl": 60}, limit=2)
    claims.create(ctx, "q", {"ttl": 300}, limit=1)
    clock.advance(59)
    assert claims.create(ctx, "q", {"ttl": 60}, limit=1)[1][0].id == ids[3]
    clock.advance(2)
    with pytest.raises(NotFound):
        claims.get(ctx, "q", claim_id)
    assert messages.get(ctx, "q", ids[0]).claim_id is None
    found, _, _ = messages.list_messages(ctx, "q", echo=True)
    assert [m.id for m in found] == ids[:2]
    again, taken = claims.create(ctx, "q", {"ttl": 60}, limit=5)
    assert [m.id for m in taken] == ids[:2]
    with pytest.raises(NotFound):
        claims.get(ctx, "q", claim_id)
    assert claims.get(ctx, "q", again)[2][0].id == ids[0]


def test_claim_of_all_deleted_messages_shows_none(ctx):
    ids = post(ctx, "q", 2)
    claim_id, _ = claims.create(ctx, "q", {"ttl": 300})
    for message_id in ids:
        messages.delete(ctx, "q", message_id, claim_id)
    assert claims.get(ctx, "q", claim_id)[2] == []


def test_messages_of_expired_claims_come_back_oldest_first(ctx, clock):
    ids = post(ctx, "q", 2)
    claims.create(ctx, "q", {"ttl": 120}, limit=1)  # holds the older message longer
    claims.create(ctx, "q", {"ttl": 60}, limit=1)
    clock.advance(121)
    _, taken = claims.create(ctx, "q", {"ttl": 60}, limit=1)
    assert [m.id for m in taken] == ids[:1]


def contend(ctx, queue):
    """Mark the queue as after claimers raced on it: the next claims take
    windows of positions, as they do under contention."""
    state = QueueState(queue_key(ctx.project, queue), STATE_KEY)
    state.update(actions=[QueueState.contended.set(service_clock.now_ms())])


def test_claims_from_windows_still_take_oldest_first(ctx):
    ids = post(ctx, "q", 25)
    contend(ctx, "q")
    taken = [[m.id for m in claims.create(ctx, "q", {"ttl": 60}, limit=10)[1]]
             for _ in range(4)]
    assert taken == [ids[:10], ids[10:20], ids[20:], []]


def test_claims_from_windows_find_messages_posted_after_windows_ran_ahead(ctx):
    post(ctx, "q", 1)
    contend(ctx, "q")
    for _ in range(3):  # windows handed out past the last message
        claims.create(ctx, "q", {"ttl": 60}, limit=10)
    later = post(ctx, "q", 3, start=1)
    assert [m.id for m in claims.create(ctx, "q", {"ttl": 60}, limit=10)[1]] == later


def test_windows_left_behind_the_cursor_start_again_at_it(ctx, clock):
    ids = post(ctx, "q", 30)
    contend(ctx, "q")
    claims.create(ctx, "q", {"ttl": 600}, limit=10)
    clock.advance(60)  # contention is over: a lone claimer moves the cursor alone
    claims.create(ctx, "q", {"ttl": 600}, limit=10)
    contend(ctx, "q")
    assert [m.id for m in claims.create(ctx, "q", {"ttl": 600}, limit=10)[1]] == ids[20:]


def test_released_messages_are_claimed_from_windows_too(ctx):
    ids = post(ctx, "q", 15)
    claim_id, _ = claims.create(ctx, "q", {"ttl": 600}, limit=5)
    contend(ctx, "q")
    claims.delete(ctx, "q", claim_id)
    assert [m.id for m in claims.create(ctx, "q", {"ttl": 60}, limit=10)[1]] == ids[:10]


def test_free_messages_behind_many_delayed_ones_are_claimed(ctx):
    queues.create(ctx, "q", {"_default_message_delay": 300})
    messages.delete_many(ctx, "q", post(ctx, "q", 1, delay=0))  # a gap
    post(ctx, "q", 1000, start=1)  # delayed by the queue's default
    free = post(ctx, "q", 5, start=1001, delay=0)
    taken = claims.create(ctx, "q", {"ttl": 60})[1] + claims.create(ctx, "q", {"ttl": 60})[1]
    assert [m.id for m in taken] == free


def test_a_message_landing_in_a_gap_claimers_read_past_is_claimed_first(ctx, monkeypatch):
    from chalicelib.storage import messages as message_store
    real_write, landing = message_store.write_within, []
    # A post whose message has not landed yet: its position is a young gap.
    monkeypatch.setattr(message_store, "write_within",
                        lambda records, deadline: landing.extend(records))
    slow = post(ctx, "q", 1)
    monkeypatch.setattr(message_store, "write_within", real_write)
    later = post(ctx, "q", 3, start=1)
    assert [m.id for m in claims.create(ctx, "q", {"ttl": 60}, limit=2)[1]] == later[:2]
    real_write(landing, float("inf"))  # it lands
    taken = claims.create(ctx, "q", {"ttl": 60}, limit=5)[1]
    assert [m.id for m in taken] == slow + later[2:]

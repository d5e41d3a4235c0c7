"""Message lifecycle in storage: delays, dead-letter moves, stream-fed stats,
the sweeper and deleted queues. Time moves by a controllable clock, never by
sleeping."""
import json

import pytest

from chalicelib.config import get_settings
from chalicelib.storage import claims, listing, messages, queues, stats, sweeper
from chalicelib.storage.models import MessageRecord, queue_key
from conftest import PROJECT, headers
from support.streams import stream_records


@pytest.fixture
def clock(aws, clock):
    """The frozen clock, on moto's tables."""
    return clock


def post(queue, bodies, ttl=300, delay=0, project=PROJECT):
    queues.create(project, queue, {}) if queues.get_metadata(project, queue) is None else None
    batch = [{"body": body, "ttl": ttl, **({"delay": delay} if delay else {})}
             for body in bodies]
    return messages.post(project, queue, batch, client_id="producer")


def claim(queue, limit=10, ttl=60, dead_letter=None, project=PROJECT):
    _, floor = queues.get_with_floor(project, queue)
    return claims.create(project, queue, floor, ttl=ttl, grace=60, limit=limit,
                         dead_letter=dead_letter)


def free_bodies(queue, project=PROJECT):
    _, floor = queues.get_with_floor(project, queue)
    found, _ = listing.list_messages(project, queue, floor, limit=20)
    return [message.body for message in found]


def stored_message_count(queue, project=PROJECT):
    return sum(1 for item in MessageRecord.query(queue_key(project, queue))
               if item.sk.startswith("m#"))


def test_delayed_messages_are_held_until_their_delay_ends(clock):
    post("dq", ["later"], delay=30)
    post("dq", ["now"])
    _, taken = claim("dq")
    assert [m.body for m in taken] == ["now"]
    clock.advance(31)
    _, taken = claim("dq")
    assert [m.body for m in taken] == ["later"]


def test_message_claimed_max_times_moves_to_the_dead_letter_queue(clock):
    post("work", ["poison"])
    dead_letter = claims.DeadLetter(PROJECT, "dead", max_claims=2, ttl=120)
    for _ in range(2):
        claim_id, taken = claim("work", dead_letter=dead_letter)
        assert [m.body for m in taken] == ["poison"]
        claims.release(PROJECT, "work", claim_id)
    _, taken = claim("work", dead_letter=dead_letter)
    assert taken == []
    assert free_bodies("work") == []
    # Visible in the dead-letter queue at once, not hidden under a claim.
    assert free_bodies("dead") == ["poison"]
    _, floor = queues.get_with_floor(PROJECT, "dead")
    moved, _ = listing.list_messages(PROJECT, "dead", floor)
    assert moved[0].ttl == 120 and moved[0].claim_count == 2
    assert stored_message_count("work") == 0


def test_every_claim_counts_towards_the_dead_letter_limit(clock):
    post("work", ["m"])
    dead_letter = claims.DeadLetter(PROJECT, "dead", max_claims=3)
    for expected in (1, 2, 3):
        claim_id, taken = claim("work", dead_letter=dead_letter)
        assert taken[0].claim_count == expected
        clock.advance(61)  # the claim expires instead of being released
    assert claim("work", dead_letter=dead_letter)[1] == []
    assert free_bodies("dead") == ["m"]


def test_sweep_deletes_expired_messages_in_bounded_resumable_runs(clock):
    post("old", [f"m{i}" for i in range(60)], ttl=60)
    post("old", ["fresh"], ttl=3600)
    clock.advance(61)
    # A run whose deadline has passed still makes progress: one batch.
    first = sweeper.run(clock.now, get_settings()).deleted
    assert 0 < first < 60
    total = first
    while stored_message_count("old") > 1:
        total += sweeper.run(clock.now + 10_000, get_settings()).deleted
    assert total == 60
    assert free_bodies("old") == ["fresh"]


def test_deleting_a_queue_hides_its_messages_and_the_sweep_removes_them(client, clock):
    post("gone", ["old-1", "old-2"])
    claim("gone", limit=1)
    assert client.http.delete("/v2/queues/gone", headers=headers()).status_code == 204
    assert client.http.put("/v2/queues/gone", headers=headers()).status_code == 201
    post("gone", ["new"])
    assert free_bodies("gone") == ["new"]
    sweeper.run(clock.now + 10_000, get_settings())
    remaining = [json.loads(item.body) for item in MessageRecord.query(queue_key(PROJECT, "gone"))
                 if item.sk.startswith("m#")]
    assert remaining == ["new"]


def test_a_failing_sweep_job_is_counted_and_skipped_and_the_others_go_on(
        client, clock, monkeypatch, caplog):
    for queue in ("first", "second"):
        post(queue, ["old"])
        assert client.http.delete(f"/v2/queues/{queue}", headers=headers()).status_code == 204
    real_sweep = sweeper.sweep_deleted_queue

    def broken_for_first(job, budget):
        if job.sk.endswith("/first"):
            raise RuntimeError("a job that cannot be swept")
        return real_sweep(job, budget)
    monkeypatch.setattr(sweeper, "sweep_deleted_queue", broken_for_first)

    run = sweeper.run(clock.now + 10_000, get_settings())
    assert run.failed == 1
    assert stored_message_count("second") == 0
    assert stored_message_count("first") == 1  # kept for a later run
    assert "deleted queue" in caplog.text and "first" in caplog.text

    monkeypatch.setattr(sweeper, "sweep_deleted_queue", real_sweep)
    assert sweeper.run(clock.now + 10_000, get_settings()).failed == 0
    assert stored_message_count("first") == 0


def test_purge_removes_every_message_at_once(clock):
    post("p", ["a", "b", "c"])
    claim("p", limit=1)
    messages.purge(PROJECT, "p")
    assert free_bodies("p") == []
    assert claim("p")[1] == []
    post("p", ["d"])
    assert free_bodies("p") == ["d"]


def test_stats_follow_the_stream(clock):
    ids = post("s", [1, 2, 3, 4, 5])
    post("s", [6], delay=60)
    claim_id, _ = claim("s", limit=2)
    claims.delete_message(PROJECT, "s", ids[0], claim_id)
    records = stream_records()
    assert stats.apply_stream_records(records) == []
    # Lambda retries a batch after a failure: what was counted is not again.
    assert stats.apply_stream_records(records) == []
    counts, oldest, newest = stats.queue_stats(PROJECT, "s", 0)
    assert counts == {"claimed": 1, "delayed": 1, "free": 3, "total": 5}
    assert oldest.body == 2 and newest.body == 6
    clock.advance(3 * 60)  # the claim and the delay are long over
    counts, _, _ = stats.queue_stats(PROJECT, "s", 0)
    assert counts == {"claimed": 0, "delayed": 0, "free": 5, "total": 5}


def test_stats_route_counts_and_names_oldest_and_newest(client, clock):
    h = headers()
    assert client.http.get("/v2/queues/none/stats", headers=h).json_body == {
        "messages": {"claimed": 0, "delayed": 0, "free": 0, "total": 0}}
    client.http.post("/v2/queues/st/messages", headers=h, body=json.dumps(
        {"messages": [{"body": n} for n in range(3)]}))
    client.http.post("/v2/queues/st/claims?limit=1", headers=h, body="{}")
    stats.apply_stream_records(stream_records())
    clock.advance(5)
    answer = client.http.get("/v2/queues/st/stats", headers=h)
    assert answer.status_code == 200
    body = answer.json_body["messages"]
    assert (body["claimed"], body["free"], body["total"]) == (1, 2, 3)
    assert body["oldest"]["age"] == 5 and body["oldest"]["href"].startswith(
        "/v2/queues/st/messages/")
    assert body["newest"]["created"].endswith("Z")


def test_purge_route_validates_resource_types_and_empties_the_queue(client, clock):
    h = headers()
    client.http.post("/v2/queues/pq/messages", headers=h, body=json.dumps(
        {"messages": [{"body": "x"}]}))
    bad = client.http.post("/v2/queues/pq/purge", headers=h,
                           body=json.dumps({"resource_types": ["queues"]}))
    assert bad.status_code == 400
    assert free_bodies("pq") == ["x"]
    done = client.http.post("/v2/queues/pq/purge", headers=h,
                            body=json.dumps({"resource_types": ["messages"]}))
    assert done.status_code == 204
    assert free_bodies("pq") == []


def test_poison_message_reaches_the_dead_letter_queue_through_the_api(client, clock):
    h = headers()
    client.http.put("/v2/queues/jobs", headers=h, body=json.dumps(
        {"_max_claim_count": 2, "_dead_letter_queue": "jobs-dead",
         "_dead_letter_queue_messages_ttl": 600}))
    client.http.post("/v2/queues/jobs/messages", headers=h, body=json.dumps(
        {"messages": [{"body": "poison"}]}))
    for _ in range(2):
        answer = client.http.post("/v2/queues/jobs/claims", headers=h, body="{}")
        assert answer.status_code == 201
        client.http.delete(answer.headers["Location"], headers=h)
    assert client.http.post("/v2/queues/jobs/claims", headers=h, body="{}").status_code == 204
    moved = client.http.get("/v2/queues/jobs-dead/messages?echo=true", headers=h).json_body
    assert [(m["body"], m["ttl"]) for m in moved["messages"]] == [("poison", 600)]


def test_purge_of_subscriptions_keeps_the_messages(client, clock):
    h = headers()
    client.http.post("/v2/queues/ps/messages", headers=h, body=json.dumps(
        {"messages": [{"body": "kept"}]}))
    client.http.post("/v2/queues/ps/subscriptions", headers=h, body=json.dumps(
        {"subscriber": "mailto:ops@example.com"}))
    answer = client.http.post("/v2/queues/ps/purge", headers=h,
                              body=json.dumps({"resource_types": ["subscriptions"]}))
    assert answer.status_code == 204
    listed = client.http.get("/v2/queues/ps/subscriptions", headers=h).json_body
    assert listed["subscriptions"] == []
    assert free_bodies("ps") == ["kept"]


def test_a_dead_letter_move_that_lost_its_race_moves_nothing(clock):
    post("work", ["m"])
    _, floor = queues.get_with_floor(PROJECT, "work")
    [record] = [item for item in MessageRecord.query(queue_key(PROJECT, "work"))
                if item.sk.startswith("m#")]
    claim("work")  # another claimer holds it now
    dead_letter = claims.DeadLetter(PROJECT, "dead", max_claims=1)
    assert claims.move_to_dead_letter(record, dead_letter, clock.now) is False
    assert stored_message_count("work") == 1 and stored_message_count("dead") == 0

"""Messages and claims end to end: python-zaqarclient against the local
runner over real HTTP."""
import uuid

import pytest

from e2e.clients import noauth_client

OTHER_CLIENT = "4481af92-2b9e-11e3-b191-71861300734c"




@pytest.fixture
def project():
    return f"e2e-messages-{uuid.uuid4()}"


def test_post_list_claim_renew_delete_pop(runner_url, project):
    producer = noauth_client(runner_url, project)
    observer = noauth_client(runner_url, project, OTHER_CLIENT)
    queue = producer.queue("work", force_create=True)
    queue.post([{"body": {"n": n}, "ttl": 300} for n in range(6)])

    # echo: a client sees its own messages only when it asks to.
    assert list(queue.messages()) == []
    assert [m.body["n"] for m in queue.messages(echo=True)] == list(range(6))
    assert [m.body["n"] for m in observer.queue("work").messages()] == list(range(6))

    claim = queue.claim(ttl=60, grace=60, limit=2)
    claimed = list(claim)
    assert [m.body["n"] for m in claimed] == [0, 1]
    claim.update(ttl=120, grace=60)
    assert claim.ttl == 120
    for message in claimed:
        message.delete()  # with its claim id, parsed from the href
    assert [m.body["n"] for m in queue.messages(echo=True)] == [2, 3, 4, 5]

    popped = list(queue.pop(count=2))
    assert [m.body["n"] for m in popped] == [2, 3]

    remaining = list(queue.messages(echo=True))
    queue.delete_messages(*[m.id for m in remaining])
    assert list(queue.messages(echo=True, include_claimed=True)) == []


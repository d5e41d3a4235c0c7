"""A write DynamoDB applied whose answer never came back (a read timeout).

The storage code retries such a write itself (storage/retry.py) and knows
that the retry may find its own first attempt already applied. Here the
answer is lost inside botocore's own send: a `before-send` handler lets the
request reach the backend, then raises the timeout, which botocore treats as
it treats a real one.
"""
import json

import pytest
from botocore.exceptions import ReadTimeoutError

from chalicelib.actions import claims
from chalicelib.storage.models import MessageRecord
from contract.support import post


class LostAnswer:
    """Loses the answer to the first UpdateItem of a message item, once the
    backend has applied it."""

    def __init__(self, client, under_moto):
        self.client, self.under_moto, self.lost = client, under_moto, 0

    def __call__(self, request, event_name, **_):
        if self.lost or not event_name.endswith(".UpdateItem"):
            return None
        body = json.loads(request.body or b"{}")
        if not body.get("Key", {}).get("sk", {}).get("S", "").startswith("m#"):
            return None
        self.lost += 1
        if not self.under_moto:  # moto's own handler, called first, applied it
            self.client._endpoint.http_session.send(request)
        raise ReadTimeoutError(endpoint_url=request.url)


@pytest.fixture
def lost_answer(backend):
    client = MessageRecord._get_connection().connection.client
    handler = LostAnswer(client, under_moto=not backend.dynamodb_endpoint)
    # After moto's own handler, which is registered for every "before-send".
    client.meta.events.register_last("before-send", handler)
    yield handler
    client.meta.events.unregister("before-send", handler)


def test_claim_returns_a_message_whose_take_answer_was_lost(ctx, lost_answer):
    ids = post(ctx, "q", 3)
    claim_id, taken = claims.create(ctx, "q", {"ttl": 120, "grace": 60}, limit=3)
    assert lost_answer.lost == 1
    # Every message the claim holds is one the caller is told of.
    assert sorted(m.id for m in taken) == ids
    _, _, held = claims.get(ctx, "q", claim_id)
    assert sorted(m.id for m in held) == ids

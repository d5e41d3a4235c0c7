"""The websocket API against the local runner over a real ws:// socket:
python-zaqarclient's websocket transport, unchanged, and a plain `websockets`
client; and a push to a subscribed connection of a message posted over REST."""
import asyncio
import json
import time
import uuid

import msgpack
import pytest
import requests
from websockets.asyncio.client import connect
from zaqarclient import transport
from zaqarclient.transport import errors
from zaqarclient.transport.request import Request
from zaqarclient.transport.ws import WebsocketTransport

from conftest import CLIENT_ID, headers

PUSH_DEADLINE_S = 1.0


@pytest.fixture
def ws_url(runner_ws_url):
    return runner_ws_url


@pytest.fixture
def project():
    return f"e2e-ws-{uuid.uuid4()}"


@pytest.fixture
def zaqar_ws(ws_url, project):
    """python-zaqarclient's websocket transport, which it picks for a ws:// URL."""
    conf = {"auth_opts": {"backend": "noauth",
                          "options": {"os_project_id": project, "os_auth_token": ""}}}
    ws = transport.get_transport_for(ws_url, version=2, options=conf)
    assert isinstance(ws, WebsocketTransport)
    yield lambda action, **body: ws.send(Request(ws_url, action, content=json.dumps(body)))
    ws.cleanup()


def test_python_zaqarclient_websocket_transport(zaqar_ws):
    # The client authenticates first, then sends each request in the body: its
    # websocket transport sends no query parameters.
    created = zaqar_ws("queue_create", queue_name="jobs")
    assert (created.status_code, created.deserialized_content) == (201, "Queue jobs created.")
    ids = zaqar_ws("message_post", queue_name="jobs",
                   messages=[{"body": {"task": n}} for n in range(3)]
                   ).deserialized_content["message_ids"]
    assert len(ids) == 3

    listed = zaqar_ws("message_list", queue_name="jobs", echo=True).deserialized_content
    assert [message["body"] for message in listed["messages"]] == [
        {"task": 0}, {"task": 1}, {"task": 2}]

    claim = zaqar_ws("claim_create", queue_name="jobs", limit=2).deserialized_content
    assert [message["id"] for message in claim["messages"]] == ids[:2]
    for message in claim["messages"]:
        deleted = zaqar_ws("message_delete", queue_name="jobs", message_id=message["id"],
                           claim_id=claim["claim_id"])
        assert deleted.status_code == 204
    with pytest.raises(errors.ResourceNotFound):
        zaqar_ws("message_get", queue_name="jobs", message_id=ids[0])
    with pytest.raises(errors.MalformedRequest):
        zaqar_ws("queue_create")  # no queue_name

    assert zaqar_ws("queue_delete", queue_name="jobs").status_code == 204
    assert zaqar_ws("queue_list").deserialized_content == {"queues": []}


class Socket:
    """A plain websockets client speaking Zaqar's frames."""

    def __init__(self, websocket, project):
        self.websocket = websocket
        self.headers = headers(project=project)

    async def ask(self, action, binary=False, **body):
        frame = {"action": action, "headers": self.headers, "body": body}
        await self.websocket.send(msgpack.packb(frame) if binary else json.dumps(frame))
        answer = await self.websocket.recv()
        return msgpack.unpackb(answer) if binary else json.loads(answer)


def test_plain_websocket_client(ws_url, project):
    async def session():
        async with connect(ws_url) as websocket:
            ws = Socket(websocket, project)
            assert (await ws.ask("queue_create", queue_name="q"))["headers"] == {
                "status": 201}
            posted = await ws.ask("message_post", binary=True, queue_name="q",
                                  messages=[{"body": "one"}, {"body": "two"}])
            assert posted["headers"]["status"] == 201
            listed = await ws.ask("message_list", queue_name="q", echo=True)
            assert [m["body"] for m in listed["body"]["messages"]] == ["one", "two"]
            claimed = await ws.ask("claim_create", queue_name="q", limit=1)
            claim_id = claimed["body"]["claim_id"]
            [message] = claimed["body"]["messages"]
            assert (message["body"], message["claim_id"]) == ("one", claim_id)
            deleted = await ws.ask("message_delete", queue_name="q", message_id=message["id"],
                                   claim_id=claim_id)
            assert deleted["headers"]["status"] == 204

            await websocket.send("{not json")  # a bad frame leaves the connection usable
            assert json.loads(await websocket.recv())["headers"]["status"] == 400
            left = await ws.ask("message_list", queue_name="q", echo=True)
            assert [m["body"] for m in left["body"]["messages"]] == ["two"]
            assert (await ws.ask("queue_delete", queue_name="q"))["headers"]["status"] == 204
    asyncio.run(session())


def test_a_message_posted_over_rest_is_pushed_to_a_subscribed_connection(
        runner_url, ws_url, project):
    async def session():
        async with connect(ws_url) as websocket:
            ws = Socket(websocket, project)
            subscribed = await ws.ask("subscription_create", queue_name="news", ttl=300)
            assert subscribed["headers"]["status"] == 201
            started = time.monotonic()
            posted = await asyncio.to_thread(
                requests.post, f"{runner_url}/v2/queues/news/messages",
                headers=headers(project=project, client_id=CLIENT_ID),
                json={"messages": [{"body": {"headline": "pushed"}, "ttl": 120}]})
            assert posted.status_code == 201
            stored = time.monotonic()
            pushed = json.loads(await asyncio.wait_for(websocket.recv(), PUSH_DEADLINE_S))
            arrived = time.monotonic()
            print(f"\nwebsocket push: {(arrived - stored) * 1000:.0f} ms after the REST "
                  f"post was answered ({(arrived - started) * 1000:.0f} ms after it was sent)")
            assert pushed == {"body": {"headline": "pushed"}, "ttl": 120,
                              "queue_name": "news", "Message_Type": "Notification"}
    asyncio.run(session())

"""The app's websocket handlers served on ws://host:port, as API Gateway's
WebSocket API serves them on AWS.

Each handshake, frame and close becomes the event API Gateway would send
($connect, $default, $disconnect), handed to the app's handler in a worker
thread; a connection's frames are handled one at a time, in order. A binary
frame arrives base64-encoded with `isBase64Encoded`, as API Gateway encodes
binary payloads. `app.websocket_api.send` and `close` are rebound to the
local sockets, and raise Chalice's WebsocketDisconnectedError for a closed
one, as the real ones do on the management API's 410 GoneException.

Known differences from API Gateway: it closes a connection on any binary
frame (code 1003) and on a frame over 32 KB or a message over 128 KB (1009);
here binary frames are handled, and messages up to 1 MiB reach the app, which
refuses those over 128 KB with an error frame.
"""
import asyncio
import base64
import logging
import threading
import time
import uuid
from http import HTTPStatus

from chalice.app import WebsocketDisconnectedError
from chalice.local import LambdaContext
from websockets.asyncio.server import serve as serve_websockets
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("local.websocket")
API_ID = "local"
STAGE = "local"
EVENT_TYPES = {"$connect": "CONNECT", "$default": "MESSAGE", "$disconnect": "DISCONNECT"}
MAX_MESSAGE_BYTES = 1024 * 1024
SEND_TIMEOUT_S = 10
HANDLER_TIMEOUT_MS = 30_000
# What API Gateway sends a client when the $default integration fails.
INTERNAL_ERROR = '{"message": "Internal server error"}'


def connection_id_of(socket):
    # Shaped like API Gateway's: 16 base64 characters (random, from the
    # socket's own UUID).
    return base64.b64encode(socket.id.bytes[:10]).decode()


class WebsocketServer:
    """One asyncio loop in a daemon thread, serving every connection."""

    def __init__(self, app, host, port):
        self.app = app
        self.host = host
        self.port = port
        self.sockets = {}  # connection id -> open websocket
        self._loop = None
        self._stopped = None
        self._ready = threading.Event()
        self._failure = None
        self._thread = threading.Thread(target=self._run, name="websocket-server",
                                        daemon=True)

    def start(self):
        self.app.websocket_api.send = self.send
        self.app.websocket_api.close = self.close
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure
        return self

    def stop(self):
        self._loop.call_soon_threadsafe(self._stopped.set_result, None)
        self._thread.join()

    @property
    def url(self):
        return f"ws://{self.host}:{self.port}"

    def _run(self):
        try:
            asyncio.run(self._serve())
        except Exception as failure:  # e.g. the port is taken: start() raises it
            self._failure = failure
        finally:
            self._ready.set()

    async def _serve(self):
        self._loop = asyncio.get_running_loop()
        self._stopped = self._loop.create_future()
        async with serve_websockets(self._connection, self.host, self.port,
                                    process_request=self._handshake, compression=None,
                                    max_size=MAX_MESSAGE_BYTES) as server:
            self.port = server.sockets[0].getsockname()[1]  # port 0: the one picked
            self._ready.set()
            await self._stopped

    async def _handshake(self, socket, request):
        """$connect runs before the handshake completes; a failure refuses it."""
        answer = await asyncio.to_thread(self._invoke, "$connect",
                                         connection_id_of(socket),
                                         headers=dict(request.headers.raw_items()))
        status = 500 if answer is None else answer.get("statusCode", 200)
        if not 200 <= status < 300:
            return socket.respond(status, f"{HTTPStatus(status).phrase}\n")
        return None

    async def _connection(self, socket):
        connection_id = connection_id_of(socket)
        self.sockets[connection_id] = socket
        try:
            async for frame in socket:
                answer = await asyncio.to_thread(self._invoke, "$default",
                                                 connection_id, frame=frame)
                if answer is None:
                    await socket.send(INTERNAL_ERROR)
        except ConnectionClosed:
            pass
        finally:
            del self.sockets[connection_id]
            await asyncio.to_thread(self._invoke, "$disconnect", connection_id)

    def _event(self, route_key, connection_id, frame, headers):
        event = {
            "requestContext": {
                "routeKey": route_key, "eventType": EVENT_TYPES[route_key],
                "connectionId": connection_id, "domainName": f"{self.host}:{self.port}",
                "stage": STAGE, "apiId": API_ID, "requestId": str(uuid.uuid4()),
                "requestTimeEpoch": int(time.time() * 1000), "messageDirection": "IN",
            },
            "isBase64Encoded": isinstance(frame, bytes),
        }
        if isinstance(frame, bytes):
            event["body"] = base64.b64encode(frame).decode()
        elif frame is not None:
            event["body"] = frame
        if headers is not None:
            event["headers"] = headers
        return event

    def _invoke(self, route_key, connection_id, frame=None, headers=None):
        """The handler's answer, as Lambda would return it; None if it failed.
        Routes the app does not handle are accepted, as API Gateway's mock
        integration would."""
        config = self.app.websocket_handlers.get(route_key)
        if config is None:
            return {"statusCode": 200}
        handler = self.app.handler_map[config.name]
        context = LambdaContext(function_name=config.name, memory_size=512,
                                max_runtime_ms=HANDLER_TIMEOUT_MS)
        try:
            return handler(self._event(route_key, connection_id, frame, headers), context)
        except Exception:
            log.exception("websocket handler %s failed on %s", config.name, route_key)
            return None

    def _on_loop(self, connection_id, operation):
        """Run `operation(socket)` on the loop and wait for it, from a handler's
        thread (never from the loop's own)."""
        socket = self.sockets.get(connection_id)
        if socket is None:
            raise WebsocketDisconnectedError(connection_id)
        future = asyncio.run_coroutine_threadsafe(operation(socket), self._loop)
        try:
            future.result(SEND_TIMEOUT_S)
        except ConnectionClosed:
            raise WebsocketDisconnectedError(connection_id)

    def send(self, connection_id, message):
        """app.websocket_api.send: text for str, a binary frame for bytes."""
        self._on_loop(connection_id, lambda socket: socket.send(message))

    def close(self, connection_id):
        self._on_loop(connection_id, lambda socket: socket.close())


def serve(app, host, port):
    """Start serving the app's websocket handlers in the background."""
    server = WebsocketServer(app, host, port).start()
    log.info("Zaqar websocket API on %s", server.url)
    return server

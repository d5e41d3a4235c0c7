"""Run the whole service on one machine, as API Gateway and Lambda would.

    python -m local.runner --host 127.0.0.1 --port 8888 --data-dir .local/data

One process: DynamoDB Local as a child (or moto, in memory, when Java is
missing; or an existing DynamoDB named by --dynamodb-endpoint), the
Chalice app loaded with the stage's environment, its HTTP routes served by
Chalice's local server (threaded), a thread per `@app.schedule` handler and a
poller per `@app.on_dynamodb_record` handler (local/triggers.py). Ctrl-C or
SIGTERM stops all of it.
"""
import argparse
import functools
import json
import logging
import os
import re
import signal
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

import boto3
from chalice.cli.factory import CLIFactory
from chalice.local import ChaliceRequestHandler, LambdaContext, LocalGateway, create_local_server

from chalicelib import cors, throttle
from chalicelib.config import get_settings
from local import dynamodb_local, logs, websocket_server
from local.stage import PROJECT_DIR, stage_environment
from local.triggers import start_triggers, stop_triggers

log = logging.getLogger("local.runner")
REGION = "us-east-1"
NOT_FOUND_BODY = json.dumps({"title": "404 Not Found"}).encode()
# API Gateway's payload limit; it answers 413 to anything larger.
MAX_BODY_BYTES = 10 * 1024 * 1024
# Seconds a read may wait on a client; API Gateway gives up on a request at ~29.
READ_TIMEOUT = 20.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m local.runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888, help="HTTP API port (0: any free port)")
    parser.add_argument("--ws-port", type=int, default=9000,
                        help="websocket API port (0: any free port)")
    parser.add_argument("--dynamodb-port", type=int, default=8000,
                        help="DynamoDB Local port (0: any free port)")
    parser.add_argument("--data-dir", default=".local/data",
                        help="where DynamoDB Local keeps its tables across restarts")
    parser.add_argument("--in-memory", action="store_true",
                        help="keep nothing: DynamoDB Local runs with -inMemory")
    parser.add_argument("--dynamodb-endpoint", metavar="URL",
                        help="use this DynamoDB instead of starting one (another "
                             "DynamoDB Local, or AWS with the caller's credentials); "
                             "missing tables are created there")
    parser.add_argument("--stage", default="dev", help="Chalice stage whose environment to use")
    parser.add_argument("--auth", help="authenticate so instead of as the stage says: "
                                       "noauth, or keystone, apikey, jwt, or a comma list "
                                       "of those (keystone,apikey)")
    parser.add_argument("--keystone-url", help="Keystone's identity v3 endpoint, e.g. "
                                               "http://127.0.0.1:5000/v3")
    parser.add_argument("--jwt-issuer", help="the OIDC issuer whose tokens jwt mode takes "
                                             "(its keys at <issuer>/.well-known/jwks.json)")
    parser.add_argument("--jwt-audience", help="the audience (client id) its tokens must "
                                               "name; default: zaqar")
    parser.add_argument("--clock-file", default=None,
                        help="a file holding seconds to add to the app's clock "
                             "(tests move time with it; absent or empty: 0)")
    parser.add_argument("--schedule-interval", type=float, default=10.0,
                        help="seconds between runs of each @app.schedule handler")
    parser.add_argument("--read-timeout", type=float, default=READ_TIMEOUT,
                        help="seconds an HTTP connection may send nothing: a request "
                             "stalled that long is answered 408, an idle keep-alive "
                             "connection is closed")
    parser.add_argument("--log-format", choices=logs.FORMATS, default="text",
                        help="text, or the JSON lines a deployed function writes: one "
                             "per request, with its request id")
    return parser.parse_args(argv)


class Storage:
    """The local DynamoDB: its endpoint (None: moto, in this process) and how
    to stop it."""

    def __init__(self, endpoint, stop, description):
        self.endpoint = endpoint
        self.stop = stop
        self.description = description


def start_storage(host, port, data_dir, endpoint=None):
    """The DynamoDB at `endpoint` if given (nothing to start or stop); else
    DynamoDB Local when Java is there; else moto, in process and in memory
    (moto's standalone server would need Flask, which nothing else needs)."""
    if endpoint:
        return Storage(endpoint, lambda: None, f"DynamoDB at {endpoint} (not started here)")
    if dynamodb_local.java_available():
        db = dynamodb_local.start(port=port, data_dir=data_dir, host=host)
        where = f"data in {data_dir}" if data_dir else "in memory"
        return Storage(db.endpoint, db.stop, f"DynamoDB Local at {db.endpoint}, {where}")
    log.warning("Java not found: using moto instead of DynamoDB Local; nothing is "
                "kept across restarts, and moto is more lenient than AWS")
    import moto
    mock = moto.mock_aws()
    mock.start()
    return Storage(None, mock.stop, "moto, in process, in memory")


def is_local(endpoint):
    """Whether storage is on this machine (moto, or a DynamoDB on loopback)."""
    return not endpoint or urlsplit(endpoint).hostname in ("127.0.0.1", "localhost", "::1")


def configure_environment(stage, endpoint, overrides=None):
    """What a deployed function's environment holds, pointed at local storage
    (and with `overrides` over the stage's variables).

    Settings are built from it per invocation; the app also reads it once at
    import, for the stream its handlers are registered on.
    """
    os.environ.update(stage_environment(stage))
    os.environ.update(overrides or {})
    if endpoint:
        os.environ["DYNAMODB_ENDPOINT"] = endpoint
    else:
        os.environ.pop("DYNAMODB_ENDPOINT", None)
    os.environ.update({
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        # Without it botocore 1.44 builds account-based endpoints, which
        # moto's stream API does not answer.
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    })
    if not is_local(endpoint):
        return  # AWS itself: the caller's own credentials
    # Dummy credentials: local storage ignores them, and real ones must never
    # be picked up from the developer's profile by mistake.
    os.environ.update({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"})
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)


def load_app(stage, overrides=None):
    """The app and its Chalice config, loaded as `chalice local` loads them.
    Loading sets the stage's variables again: `overrides` go back over them."""
    config = CLIFactory(str(PROJECT_DIR), environ=os.environ).create_config_obj(stage)
    app = config.chalice_app
    os.environ.update(overrides or {})
    return app, config


def build_storage_clients():
    """Build every model's botocore client now, in one thread. pynamodb builds
    them on first use without a lock, so the first concurrent requests would
    each build their own (tens of CPU-ms apiece) and all but one go to waste."""
    from chalicelib.storage.models import service_models
    for model in service_models():
        model._get_connection().connection.client  # noqa: B018 (builds it)


def aws_client(service, endpoint):
    """A client of `service` at the local `endpoint`; on AWS, at the region's
    own endpoint of the service (streams have their own)."""
    return boto3.client(service, endpoint_url=endpoint if is_local(endpoint) else None,
                        region_name=REGION)


def start_pool_streams(app, config):
    """Poll each pool's messages stream too (a pool names its own endpoint
    and region)."""
    from local.triggers import PoolStreams
    worker = PoolStreams(app, config, lambda service, place: boto3.client(
        service, endpoint_url=place.endpoint, region_name=place.region))
    worker.start()
    return worker


class Refused(Exception):
    """A request the runner answers with an error itself; the app never sees it."""

    def __init__(self, code, description=None):
        super().__init__(code, description)
        self.code, self.description = code, description


class GatewayStage:
    """What the packaged gateway's stage is deployed with (infra/package.py):
    its throttling, and the CORS headers of its own answers (the stage's first
    allowed origin, chalicelib/cors.py). Fixed when the API is deployed, so
    read once: building Settings on every request cost more than the rest of
    the runner's part in it."""

    def __init__(self, settings):
        self.rate = settings.api_rate_limit
        self.burst = settings.api_burst_limit or self.rate
        first = cors.first_origin(settings.cors_allowed_origins)
        self.cors_headers = {} if first is None else \
            cors.gateway_headers(first, settings.cors_allow_credentials)

    def throttled(self):
        """0, or the seconds to wait: the stage's own limits, as API Gateway
        enforces them before any function."""
        if not self.rate:
            return 0
        return throttle.spend(throttle.STAGE, self.rate, self.burst, int(time.time() * 1000))


class Gateway(LocalGateway):
    """Chalice local's API Gateway, one for the whole server (Chalice's
    handler builds one per connection): the stage's authorizer in place of
    Chalice's TOKEN one when given, the request id API Gateway gives each
    request (the app ties its x-openstack-request-id to it), and the
    function's context settings looked up once, not on every request."""

    def __init__(self, app, config, authorizer=None):
        super().__init__(app, config)
        if authorizer is not None:
            self._authorizer = authorizer
        timeout = config.lambda_timeout  # as Chalice's own _generate_lambda_context
        self._context_settings = {
            "function_name": config.function_name, "memory_size": config.lambda_memory_size,
            "max_runtime_ms": (self.MAX_LAMBDA_EXECUTION_TIME if timeout is None
                               else timeout) * 1000}

    def _generate_lambda_context(self):
        return LambdaContext(**self._context_settings)

    def _generate_lambda_event(self, method, path, headers, body):
        event = super()._generate_lambda_event(method, path, headers, body)
        event["requestContext"]["requestId"] = str(uuid.uuid4())
        return event


class RequestHandler(ChaliceRequestHandler):
    """Chalice's request handler, plus one log line per request (the app's,
    or the runner's own for a request the app never saw), and 404
    `{"title": "404 Not Found"}` for unknown paths where API Gateway (and so
    Chalice local) answers 403 "Missing Authentication Token".

    Whatever a client sends, the answer is JSON in Zaqar's error shape
    (http.server's own are HTML), a stalled request is given up after
    read_timeout seconds, and a body is read only when framed as API Gateway
    takes it: one Content-Length of at most MAX_BODY_BYTES.
    """

    # With Nagle on, the tail of an answer larger than a segment waits for
    # the keep-alive client's delayed ACK: ~40 ms more.
    disable_nagle_algorithm = True
    body = b""  # what flush_headers sends after the headers
    # A request line with no version (HTTP/0.9) or a bad one is answered with
    # a status line and headers too: an HTTP/0.9 answer has none, so a client
    # would get bare JSON, or nothing at all for an error.
    default_request_version = "HTTP/1.1"

    def __init__(self, *args, gateway, stage, read_timeout):
        self.local_gateway, self.stage = gateway, stage
        self.timeout = read_timeout  # socketserver sets it on the connection
        # Not ChaliceRequestHandler's, which builds a gateway per connection.
        BaseHTTPRequestHandler.__init__(self, *args)

    def handle_one_request(self):
        # parse_request starts the clock; a request line too long for it has none.
        self.started = self.status = self.request_id = None
        super().handle_one_request()
        if self.status is not None and self.request_id is None:
            self._log_unseen_request()

    def parse_request(self):
        self.started = time.monotonic()
        try:
            return super().parse_request()  # False: it has answered
        except TimeoutError:  # in the headers (http.server would just hang up)
            self.send_error(HTTPStatus.REQUEST_TIMEOUT)
            return False

    def _generic_handle(self):
        wait = self.stage.throttled()
        if wait:
            self._send_http_response(429, {
                "Content-Type": "application/json", "Retry-After": str(wait),
                **self.stage.cors_headers}, json.dumps(throttle.GATEWAY_THROTTLED_BODY))
            return
        try:
            super()._generic_handle()
        except Refused as refused:
            self.send_error(refused.code, refused.description)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    def _parse_payload(self):
        return dict(self.headers), self._read_body()

    def _read_body(self):
        if self.headers.defects:
            # e.g. a line without a colon: the parser took it and every line
            # after it, Content-Length too, for the start of a body.
            raise Refused(HTTPStatus.BAD_REQUEST,
                          "malformed header line: each must be 'Name: value'")
        if "Transfer-Encoding" in self.headers:
            raise Refused(HTTPStatus.LENGTH_REQUIRED,
                          "Transfer-Encoding (chunked bodies) is not supported: "
                          "send the body with a Content-Length")
        length = self._content_length()
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise Refused(HTTPStatus.REQUEST_TIMEOUT) from None
        if len(body) < length:
            raise Refused(HTTPStatus.BAD_REQUEST, "the body is shorter than its Content-Length")
        return body or None

    def _content_length(self):
        values = {value.strip() for value in self.headers.get_all("Content-Length", ["0"])}
        digits = values.pop() if len(values) == 1 else ""
        if not re.fullmatch("[0-9]+", digits):
            raise Refused(HTTPStatus.BAD_REQUEST,
                          "Content-Length must be one decimal number of bytes")
        digits = digits.lstrip("0") or "0"
        # Compared as text first: int() refuses over 4300 digits.
        if len(digits) > len(str(MAX_BODY_BYTES)) or int(digits) > MAX_BODY_BYTES:
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                          f"the body must be at most {MAX_BODY_BYTES} bytes")
        return int(digits)

    def _send_error_response(self, error):
        """The gateway's own answers (an unknown path, the authorizer's
        refusals), with the static CORS headers the packaged gateway's carry."""
        cors_headers = self.stage.cors_headers
        if error.headers.get("x-amzn-ErrorType") == "UnauthorizedException":
            self._send_http_response(404, {"Content-Type": "application/json", **cors_headers},
                                     NOT_FOUND_BODY)
        else:
            self._send_http_response(error.CODE, {**error.headers, **cors_headers}, error.body)

    def _send_http_response_with_body(self, code, headers, body):
        """Chalice's, except that a HEAD answer gets GET's headers and no body,
        which a keep-alive client would read as the start of the next answer."""
        if not isinstance(body, bytes):
            body = body.encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
        headers["Content-Length"] = str(len(body))
        self.send_response(code)
        self.body = b"" if self.command == "HEAD" else body
        self._send_headers(headers)  # and the body, in flush_headers
        if self.body:  # an HTTP/0.9 answer: no headers, so nothing flushed
            self.wfile.write(self.body)
            self.body = b""

    def flush_headers(self):
        # Headers and body in one write: one send (~50 us of the runner's CPU
        # per answer) and one segment.
        self._headers_buffer.append(self.body)
        self.body = b""
        super().flush_headers()

    def send_error(self, code, message=None, explain=None):
        """http.server's error answers (bad request line, headers too large,
        unknown method...) in Zaqar's JSON error shape. The connection closes:
        where the next request starts is not known."""
        phrase, explanation = self.responses[code]
        description = ": ".join(filter(None, (message, explain))) or explanation
        body = json.dumps({"title": f"{int(code)} {phrase}", "description": description})
        self.log_error("code %d, %s", code, description)
        self._send_http_response(code, {"Content-Type": "application/json",
                                        "Connection": "close"}, body)

    def _send_headers(self, headers):
        # The app's answers carry its request id: the app logged them.
        self.request_id = headers.get("x-openstack-request-id")
        super()._send_headers(headers)

    def log_request(self, code="-", size="-"):
        self.status = int(code)  # logged once the answer is sent

    def _log_unseen_request(self):
        latency = None if self.started is None else \
            round((time.monotonic() - self.started) * 1000, 1)
        document = {"level": "INFO", "logger": log.name, "kind": "gateway",
                    "message": f"{self.requestline or '-'} {self.status}",
                    "method": getattr(self, "command", None), "path": getattr(self, "path", None),
                    "status": self.status, "latency_ms": latency}
        log.info(document["message"], extra={"document": document})

    def log_message(self, format, *args):
        log.warning("%s: %s", self.address_string(), format % args)


def create_http_server(app, config, host, port, read_timeout=READ_TIMEOUT, authorizer=None):
    """Chalice's threaded local server, with RequestHandler in place of its own."""
    server = create_local_server(app, config, host, port)
    server.server.RequestHandlerClass = functools.partial(
        RequestHandler, gateway=Gateway(app, config, authorizer),
        stage=GatewayStage(get_settings()), read_timeout=read_timeout)
    return server


def auth_overrides(args):
    overrides = {}
    if args.auth:
        overrides["AUTH_STRATEGY"] = args.auth
    if args.keystone_url:
        overrides["KEYSTONE_URL"] = args.keystone_url
    if args.jwt_issuer:
        overrides["JWT_ISSUER"] = args.jwt_issuer
        overrides["JWT_AUDIENCE"] = args.jwt_audience or "zaqar"
    elif args.jwt_audience:
        overrides["JWT_AUDIENCE"] = args.jwt_audience
    return overrides


def checked_settings():
    """The stage's settings, refused at once if no request could be served
    safely with them (noauth outside dev, keystone without a URL...)."""
    from chalicelib.auth import Misconfigured, check_settings
    settings = get_settings()
    try:
        check_settings(settings)
    except Misconfigured as error:
        raise SystemExit(f"cannot serve: {error}") from None
    return settings


def serve_websockets(app, host, port):
    """Serve the app's websocket handlers (Zaqar's port 9000), in the background."""
    return websocket_server.serve(app, host, port)


def raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def shift_clock(clock_file):
    """Make the app's one clock (chalicelib.clock) run ahead by the seconds
    written in clock_file, read on every call, so an end-to-end test can let
    messages and claims expire without waiting."""
    from chalicelib import clock
    real_now_ms = clock.now_ms

    def shifted_now_ms():
        try:
            offset = float(Path(clock_file).read_text() or 0)
        except (OSError, ValueError):
            offset = 0
        return real_now_ms() + int(offset * 1000)
    clock.now_ms = shifted_now_ms


def main(argv=None):
    args = parse_args(argv)
    logs.configure(args.log_format)
    for chatty in ("botocore", "pynamodb"):  # credential and settings notices
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # SIGTERM (from CI, a test fixture, a process manager) stops like Ctrl-C.
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    data_dir = None if args.in_memory else Path(args.data_dir).resolve()
    storage, workers, server = None, [], None
    try:
        storage = start_storage(args.host, args.dynamodb_port, data_dir,
                                args.dynamodb_endpoint)
        log.info("storage: %s", storage.description)
        overrides = auth_overrides(args)
        configure_environment(args.stage, storage.endpoint, overrides)
        settings = checked_settings()
        from local.tables import create_tables
        create_tables()
        app, config = load_app(args.stage, overrides)
        build_storage_clients()
        if args.clock_file:
            shift_clock(args.clock_file)
        workers = start_triggers(app, config, aws_client("dynamodb", storage.endpoint),
                                 aws_client("dynamodbstreams", storage.endpoint),
                                 args.schedule_interval, REGION)
        if settings.pooling:
            workers.append(start_pool_streams(app, config))
        serve_websockets(app, args.host, args.ws_port)
        authorizer = None
        if settings.auth_strategy != "noauth":
            from local.gateway import RequestAuthorizer
            authorizer = RequestAuthorizer(app, settings)
        server = create_http_server(app, config, args.host, args.port,
                                    args.read_timeout, authorizer)
        host, port = server.server.server_address[:2]
        log.info("Zaqar v2 API (stage %s, %s) on http://%s:%s", args.stage,
                 settings.auth_strategy, host, port)
        server.server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        # A second Ctrl-C or SIGTERM must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if server is not None:
            server.server.server_close()
        stop_triggers(workers)
        if storage is not None:
            storage.stop()


if __name__ == "__main__":
    main()

"""Run the whole service on one machine, as API Gateway and Lambda would.

    python -m local.runner --host 127.0.0.1 --port 8888 --data-dir .local/data

One process: DynamoDB Local as a child (or moto, in memory, when Java is
missing), the Chalice app loaded with the stage's environment, its HTTP
routes served by Chalice's local server (threaded), a thread per
`@app.schedule` handler and a poller per `@app.on_dynamodb_record` handler
(local/triggers.py). Ctrl-C or SIGTERM stops all of it.
"""
import argparse
import functools
import json
import logging
import os
import signal
import time
from pathlib import Path

import boto3
from chalice.cli.factory import CLIFactory
from chalice.local import ChaliceRequestHandler, create_local_server
from pynamodb.models import Model

from local import dynamodb_local, websocket_server
from local.stage import PROJECT_DIR, stage_environment
from local.triggers import start_triggers, stop_triggers

log = logging.getLogger("local.runner")
REGION = "us-east-1"
NOT_FOUND_BODY = json.dumps({"title": "404 Not Found"}).encode()


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
    parser.add_argument("--stage", default="dev", help="Chalice stage whose environment to use")
    parser.add_argument("--clock-file", default=None,
                        help="a file holding seconds to add to the app's clock "
                             "(tests move time with it; absent or empty: 0)")
    parser.add_argument("--schedule-interval", type=float, default=10.0,
                        help="seconds between runs of each @app.schedule handler")
    return parser.parse_args(argv)


class Storage:
    """The local DynamoDB: its endpoint (None: moto, in this process) and how
    to stop it."""

    def __init__(self, endpoint, stop, description):
        self.endpoint = endpoint
        self.stop = stop
        self.description = description


def start_storage(host, port, data_dir):
    """DynamoDB Local when Java is there; else moto, in process and in memory
    (moto's standalone server would need Flask, which nothing else needs)."""
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


def configure_environment(stage, endpoint):
    """What a deployed function's environment holds, pointed at local storage.

    Must run before the app is imported: the models read it at import.
    """
    os.environ.update(stage_environment(stage))
    if endpoint:
        os.environ["DYNAMODB_ENDPOINT"] = endpoint
    else:
        os.environ.pop("DYNAMODB_ENDPOINT", None)
    os.environ.update({
        # Dummy credentials: local storage ignores them, and real ones must
        # never be picked up from the developer's profile by mistake.
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        # Without it botocore 1.44 builds account-based endpoints, which
        # moto's stream API does not answer.
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    })
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)


def load_app(stage):
    """The app and its Chalice config, loaded as `chalice local` loads them."""
    config = CLIFactory(str(PROJECT_DIR), environ=os.environ).create_config_obj(stage)
    return config.chalice_app, config


def build_storage_clients():
    """Build every model's botocore client now, in one thread. pynamodb builds
    them on first use without a lock, so the first concurrent requests would
    each build their own (tens of CPU-ms apiece) and all but one go to waste."""
    models = list(Model.__subclasses__())
    while models:
        model = models.pop()
        models.extend(model.__subclasses__())
        model._get_connection().connection.client  # noqa: B018 (builds it)


def aws_client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION)


class RequestHandler(ChaliceRequestHandler):
    """Chalice's request handler, plus one log line per request, and 404
    `{"title": "404 Not Found"}` for unknown paths where API Gateway (and so
    Chalice local) answers 403 "Missing Authentication Token"."""

    # Headers and body go out in two writes; with Nagle on, a keep-alive
    # client's delayed ACK adds ~40 ms to every request.
    disable_nagle_algorithm = True

    def _generic_handle(self):
        self.started = time.monotonic()
        super()._generic_handle()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    def _send_error_response(self, error):
        if error.headers.get("x-amzn-ErrorType") == "UnauthorizedException":
            self._send_http_response(404, {"Content-Type": "application/json"},
                                     NOT_FOUND_BODY)
        else:
            super()._send_error_response(error)

    def log_request(self, code="-", size="-"):
        elapsed_ms = (time.monotonic() - self.started) * 1000
        log.info("%s %s %s %.1f ms", self.command, self.path, code, elapsed_ms)

    def log_message(self, format, *args):
        log.warning("%s: %s", self.address_string(), format % args)


def create_http_server(app, config, host, port):
    """Chalice's threaded local server, with RequestHandler in place of its own."""
    server = create_local_server(app, config, host, port)
    server.server.RequestHandlerClass = functools.partial(
        RequestHandler, app_object=app, config=config)
    return server


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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for chatty in ("botocore", "pynamodb"):  # credential and settings notices
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # SIGTERM (from CI, a test fixture, a process manager) stops like Ctrl-C.
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    data_dir = None if args.in_memory else Path(args.data_dir).resolve()
    storage, workers, server = None, [], None
    try:
        storage = start_storage(args.host, args.dynamodb_port, data_dir)
        log.info("storage: %s", storage.description)
        configure_environment(args.stage, storage.endpoint)
        from local.tables import create_tables  # imports the models: env first
        create_tables()
        app, config = load_app(args.stage)
        build_storage_clients()
        if args.clock_file:
            shift_clock(args.clock_file)
        workers = start_triggers(app, config, aws_client("dynamodb", storage.endpoint),
                                 aws_client("dynamodbstreams", storage.endpoint),
                                 args.schedule_interval, REGION)
        serve_websockets(app, args.host, args.ws_port)
        server = create_http_server(app, config, args.host, args.port)
        host, port = server.server.server_address[:2]
        log.info("Zaqar v2 API (stage %s) on http://%s:%s", args.stage, host, port)
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

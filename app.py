"""Zaqar's v2 API on AWS Lambda through Chalice.

Routes live in blueprints under chalicelib/rest; each one checks the request,
calls an action (chalicelib/actions) and shapes the answer. The functions
below the routes run on a schedule or on the messages table's stream.
"""
import contextlib

from chalice import Chalice, Rate

from chalicelib import clock, telemetry
from chalicelib.auth import gateway
from chalicelib.config import get_settings
from chalicelib.rest import (
    add_method_fallbacks,
    keys,
    messages,
    meta,
    pools,
    queues,
    subscriptions,
    topics,
)
from chalicelib.storage import configure as configure_storage
from chalicelib.storage import messages_stream_arn
from chalicelib.websocket import push

app = Chalice(app_name="zaqar-serverless")
app.register_blueprint(meta.bp)
app.register_blueprint(queues.bp)
app.register_blueprint(messages.bp)
app.register_blueprint(subscriptions.bp)
app.register_blueprint(keys.bp)
app.register_blueprint(topics.bp)
app.register_blueprint(pools.bp)
add_method_fallbacks(app)

# The one setting read at import: Chalice registers event sources (and
# `chalice package` and the local runner read them) when the app is imported.
MESSAGES_STREAM_ARN = messages_stream_arn(get_settings())

# `import app` is every function's cold start: the handlers below import
# what only they use (the stores, with pynamodb and botocore, ~150 ms) when
# they first run. bench/coldstart.py measures it.

# A sweep stops this long before the Lambda's own deadline.
SWEEP_MARGIN_MS = 5_000


def _settings():
    """This invocation's settings, with storage pointed where they say."""
    settings = get_settings()
    configure_storage(settings)
    return settings


@contextlib.contextmanager
def _counted(function, settings):
    """A run whose counters go out as one EMF line at its end (requests
    and frames are counted by their transports)."""
    opened = telemetry.invocation("run", function=function)
    try:
        yield
    finally:
        telemetry.finish(opened, stage=settings.stage)


@app.lambda_function(name="authorize")
def authorize(event, context):
    """API Gateway's REQUEST authorizer, in front of every route but the open
    ones when the stage authenticates (infra/package.py attaches it; the
    local runner calls it as API Gateway would)."""
    return gateway.authorize(event, _settings())


@app.schedule(Rate(1, unit=Rate.MINUTES))
def sweep(event):
    """Delete expired messages and deleted queues' leftovers, a bounded batch
    per run; the next run resumes where this one stopped."""
    from chalicelib.storage import sweeper
    remaining = event.context.get_remaining_time_in_millis()
    settings = _settings()
    with _counted("sweep", settings):
        sweeper.run(clock.now_ms() + remaining - SWEEP_MARGIN_MS, settings)


@app.on_dynamodb_record(stream_arn=MESSAGES_STREAM_ARN, batch_size=500)
def count_messages(event):
    """Keep each queue's stats counters from the messages table's changes."""
    from chalicelib.storage import stats
    with _counted("count_messages", _settings()):
        failed = stats.apply_stream_records(event.to_dict()["Records"])
        telemetry.count(telemetry.STREAM_BATCH_FAILURES, len(failed))
        return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in failed]}


def _deadline_ms(event):
    return clock.now_ms() + int(event.context.get_remaining_time_in_millis())


@app.on_dynamodb_record(stream_arn=MESSAGES_STREAM_ARN, batch_size=100)
def notify_subscribers(event):
    """Send new messages to their queues' subscribers (webhooks, mail)."""
    from chalicelib.notify import stream as notifications
    settings = _settings()
    with _counted("notify_subscribers", settings):
        answer = notifications.handle(event.to_dict()["Records"], _deadline_ms(event),
                                      settings)
        telemetry.count(telemetry.STREAM_BATCH_FAILURES, len(answer["batchItemFailures"]))
        return answer


@app.schedule(Rate(1, unit=Rate.MINUTES))
def retry_notifications(event):
    """Make the deliveries whose retry fell due, as their policy spaces them."""
    from chalicelib.notify import retries
    settings = _settings()
    with _counted("retry_notifications", settings):
        retries.run(_deadline_ms(event), settings)


# Zaqar's websocket API on API Gateway's WebSocket API: each handler hands
# its event to chalicelib/websocket, which answers through app.websocket_api,
# as notification delivery pushes to subscribed connections.
app.experimental_feature_flags.update(["WEBSOCKETS"])


def _aws_session():
    import boto3  # on first use only: it costs cold starts that never post
    return boto3.Session()


push.use(app.websocket_api, _aws_session)


@app.on_ws_connect()
def websocket_connect(event):
    from chalicelib.websocket import protocol
    _settings()
    protocol.on_connect(event)


@app.on_ws_message()
def websocket_message(event):
    from chalicelib.websocket import protocol
    protocol.on_message(event, _settings())


@app.on_ws_disconnect()
def websocket_disconnect(event):
    from chalicelib.websocket import protocol
    _settings()
    protocol.on_disconnect(event)

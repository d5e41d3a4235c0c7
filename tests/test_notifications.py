"""Notification delivery (contract §8): messages posted through the API reach
subscribers when the stream handler runs on the records moto's stream holds;
retries follow the retry policy; confirmation; mail through SES.

Webhooks go to a real HTTP server on 127.0.0.1 (the dev stage allows
loopback). Time is moto-free: the clock is frozen and moved by the tests,
and the retry worker's sleep moves it too, so schedules are checked exactly.
"""
import dataclasses
import json
import time

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

import app as app_module
from chalicelib import clock as service_clock
from chalicelib import config
from chalicelib import signed_urls as signing
from chalicelib.errors import ServiceUnavailable
from chalicelib.notify import retries
from chalicelib.notify import stream as notifications
from chalicelib.storage import subscriptions as store
from chalicelib.storage.models import MessageRecord
from conftest import PROJECT, headers
from local.triggers import lambda_record
from local.webhook_receiver import WebhookReceiver

QUEUE = "/v2/queues/news"
SENDER = "zaqar@example.com"


@pytest.fixture(autouse=True)
def short_timeout(monkeypatch):
    # The test client gives a function 3 s; an attempt must fit with its margin.
    monkeypatch.setenv("WEBHOOK_TIMEOUT", "1")


class Stream:
    """The messages table's stream in moto, handed over as Lambda would."""

    def __init__(self):
        table = boto3.client("dynamodb").describe_table(
            TableName=MessageRecord.Meta.table_name)["Table"]
        self.arn = table["LatestStreamArn"]
        self.streams = boto3.client("dynamodbstreams")
        self.seen = set()

    def new_records(self):
        records = []
        for shard in self.streams.describe_stream(
                StreamArn=self.arn)["StreamDescription"]["Shards"]:
            iterator = self.streams.get_shard_iterator(
                StreamArn=self.arn, ShardId=shard["ShardId"],
                ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            records += self.streams.get_records(ShardIterator=iterator)["Records"]
        fresh = [record for record in records
                 if record["dynamodb"]["SequenceNumber"] not in self.seen]
        self.seen.update(record["dynamodb"]["SequenceNumber"] for record in fresh)
        return [lambda_record(record, self.arn) for record in fresh]


@pytest.fixture
def notify(client):
    """Runs the stream function on what was written since; returns its answer."""
    stream = Stream()

    def run():
        return client.lambda_.invoke("notify_subscribers",
                                     {"Records": stream.new_records()}).payload
    run.stream = stream
    return run


def run_retries(clock):
    """The retry worker, for as long as something is pending, sleeping on the
    frozen clock."""
    def sleep(seconds):
        clock.advance(seconds)
    retries.run(clock.now + 3_600_000, config.get_settings(), sleep=sleep)


def subscribe(client, subscriber, queue=QUEUE, **fields):
    answer = client.http.post(f"{queue}/subscriptions", headers=headers(),
                              body=json.dumps(dict(fields, subscriber=subscriber)))
    assert answer.status_code == 201, answer.body
    return answer.json_body["subscription_id"]


def post(client, *bodies, queue=QUEUE, **fields):
    messages = [dict(fields, body=body) for body in bodies]
    answer = client.http.post(f"{queue}/messages", headers=headers(),
                              body=json.dumps({"messages": messages}))
    assert answer.status_code == 201, answer.body


def subscription(client, sid, queue=QUEUE):
    return client.http.get(f"{queue}/subscriptions/{sid}", headers=headers()).json_body


# -- delivery ---------------------------------------------------------------

def test_a_posted_message_reaches_the_webhook(client, notify, receiver):
    subscribe(client, f"{receiver.url}/hook")
    post(client, {"event": "x"}, ttl=300)
    assert notify() == {"batchItemFailures": []}
    [request] = receiver.received
    assert request["path"] == "/hook"
    assert request["headers"]["Content-Type"] == "application/json"
    # Exactly the fields Zaqar sends (tempest checks them): no id, no href.
    assert request["json"] == {"ttl": 300, "body": {"event": "x"},
                               "Message_Type": "Notification", "queue_name": "news"}


def test_each_subscriber_gets_each_message_once(client, notify, receiver):
    subscribe(client, f"{receiver.url}/a")
    subscribe(client, f"{receiver.url}/b")
    subscribe(client, f"{receiver.url}/elsewhere", queue="/v2/queues/other")
    post(client, 1, 2)
    notify()
    assert sorted((r["path"], r["json"]["body"]) for r in receiver.received) == [
        ("/a", 1), ("/a", 2), ("/b", 1), ("/b", 2)]
    assert notify() == {"batchItemFailures": []}
    assert len(receiver.received) == 4


def test_queues_with_a_default_delay_send_it(client, notify, receiver):
    client.http.put(QUEUE, headers=headers(), body=json.dumps({"_default_message_delay": 30}))
    subscribe(client, receiver.url)
    post(client, "own", delay=5)
    post(client, "default")
    notify()
    assert sorted((body["body"], body["delay"]) for body in receiver.bodies()) == [
        ("default", 30), ("own", 5)]


def test_post_data_and_post_headers(client, notify, receiver):
    subscribe(client, receiver.url, options={
        "post_data": '{"wrapped": "$zaqar_message$", "from": "zaqar"}',
        "post_headers": {"X-Token": "s3cret"}})
    post(client, "hi", ttl=60)
    notify()
    [request] = receiver.received
    assert request["headers"]["X-Token"] == "s3cret"
    assert request["json"] == {"from": "zaqar", "wrapped": {
        "ttl": 60, "body": "hi", "Message_Type": "Notification", "queue_name": "news"}}


def test_expired_messages_are_not_sent(client, notify, receiver, clock):
    subscribe(client, receiver.url)
    post(client, "late", ttl=60)
    clock.advance(61)
    notify()
    assert receiver.received == []


def test_messages_moved_to_a_dead_letter_queue_are_not_sent(client, receiver):
    subscribe(client, receiver.url)
    post(client, "job")
    records = Stream().new_records()
    for record in records:  # as a move writes it: with the claims it had
        record["dynamodb"]["NewImage"]["cc"] = {"N": "2"}
    client.lambda_.invoke("notify_subscribers", {"Records": records})
    assert receiver.received == []  # Zaqar notifies of posts only


# -- retries ----------------------------------------------------------------

def test_server_errors_are_retried_at_once_by_default(client, notify, receiver):
    receiver.answers = [500, 502, 200]
    sid = subscribe(client, receiver.url)
    post(client, "again")
    notify()
    assert [body["body"] for body in receiver.bodies()] == ["again"] * 3
    assert subscription(client, sid)["failed_deliveries"] == 0


POLICY = {"retries_with_no_delay": 0, "minimum_delay_retries": 2, "minimum_delay": 2,
          "maximum_delay": 12, "maximum_delay_retries": 0}


@pytest.mark.parametrize("where", ["subscription", "queue"])
def test_later_retries_keep_the_policy_schedule(client, notify, receiver, clock, where):
    if where == "queue":
        client.http.put(QUEUE, headers=headers(), body=json.dumps({"_retry_policy": POLICY}))
        subscribe(client, receiver.url)
    else:
        subscribe(client, receiver.url, options={"_retry_policy": POLICY})
    receiver.answers = [500, 500, 200]
    posted = clock.now
    post(client, "patience")
    notify()
    run_retries(clock)
    assert [request["at"] - posted for request in receiver.received] == [0, 2000, 4000]
    run_retries(clock)
    assert len(receiver.received) == 3


def test_the_subscription_policy_yields_to_a_queue_that_says_so(client, notify, receiver, clock):
    client.http.put(QUEUE, headers=headers(), body=json.dumps({"_retry_policy": dict(
        POLICY, ignore_subscription_override=True)}))
    subscribe(client, receiver.url, options={"_retry_policy": {"retries_with_no_delay": 5}})
    receiver.answers = [500, 200]
    posted = clock.now
    post(client, "queue rules")
    notify()
    run_retries(clock)
    assert [request["at"] - posted for request in receiver.received] == [0, 2000]


def test_a_delivery_out_of_retries_is_recorded(client, notify, receiver, clock):
    # One retry at once, then the linear backoff from 1 s to 11 s: 1 s, 6 s.
    sid = subscribe(client, receiver.url, options={"_retry_policy": {
        "retries_with_no_delay": 1, "minimum_delay_retries": 0, "minimum_delay": 1,
        "maximum_delay": 11, "maximum_delay_retries": 0}})
    receiver.answers = [503]
    posted = clock.now
    post(client, "doomed")
    notify()
    run_retries(clock)
    assert [request["at"] - posted for request in receiver.received] == [0, 0, 1000, 7000]
    found = subscription(client, sid)
    assert found["failed_deliveries"] == 1
    assert found["last_error"] == {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.now // 1000)),
        "description": "POST answered 503 Service Unavailable (4 attempts)"}
    assert store.pending_until(clock.now + 3_600_000) == []


def test_client_errors_are_not_retried(client, notify, receiver):
    receiver.answers = [404]
    sid = subscribe(client, receiver.url)
    post(client, "nobody home")
    notify()
    assert len(receiver.received) == 1
    assert subscription(client, sid)["last_error"]["description"] == "POST answered 404 Not Found"


def test_connection_errors_and_timeouts_are_retried(client, notify, receiver, clock):
    closed = WebhookReceiver()
    closed.close()  # nothing listens on its port any more
    refused = subscribe(client, f"{closed.url}/gone", options={"_retry_policy": {
        "retries_with_no_delay": 1, "minimum_delay_retries": 0, "maximum_delay_retries": 0,
        "minimum_delay": 1, "maximum_delay": 11}})
    subscribe(client, receiver.url, options={"_retry_policy": POLICY})
    receiver.slow_first = 2  # longer than the 1 s timeout
    post(client, "eventually")
    notify()
    run_retries(clock)
    assert [body["body"] for body in receiver.bodies()] == ["eventually"] * 2
    last_error = subscription(client, refused)["last_error"]["description"]
    assert last_error.startswith("POST failed: ConnectionRefusedError")
    assert last_error.endswith("(4 attempts)")


def test_a_failing_subscriber_holds_up_no_one(client, notify, receiver, clock, monkeypatch,
                                              request):
    monkeypatch.setenv("MAX_NOTIFIER_WORKERS", "1")  # one delivery at a time, in order
    down = WebhookReceiver()
    request.addfinalizer(down.close)
    down.answers = [503]
    subscribe(client, down.url, options={"_retry_policy": POLICY})
    subscribe(client, receiver.url)
    post(client, 1, 2, 3)
    notify()
    # Its first failure makes its other messages wait for the retry worker.
    assert [body["body"] for body in down.bodies()] == [1]
    assert [body["body"] for body in receiver.bodies()] == [1, 2, 3]
    down.answers = [200]
    run_retries(clock)
    assert sorted(body["body"] for body in down.bodies()[1:]) == [1, 2, 3]


def test_pending_deliveries_of_deleted_subscriptions_are_dropped(client, notify, receiver, clock):
    sid = subscribe(client, receiver.url, options={"_retry_policy": POLICY})
    receiver.answers = [500, 200]
    post(client, "unwanted")
    notify()
    client.http.delete(f"{QUEUE}/subscriptions/{sid}", headers=headers())
    run_retries(clock)
    assert len(receiver.received) == 1
    assert store.pending_until(clock.now + 3_600_000) == []


def test_deliveries_the_call_has_no_time_for_go_to_the_retry_worker(client, receiver):
    subscribe(client, receiver.url)
    post(client, "later")
    records = Stream().new_records()
    answer = notifications.handle(records, deadline_ms=service_clock.now_ms(),
                                  settings=config.get_settings())
    assert (answer, receiver.received) == ({"batchItemFailures": []}, [])
    client.lambda_.invoke("retry_notifications", client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
    assert [body["body"] for body in receiver.bodies()] == ["later"]


# -- records that cannot be handled ------------------------------------------

def test_an_unreadable_record_is_reported_and_the_others_delivered(client, receiver):
    subscribe(client, receiver.url)
    post(client, "fine")
    records = Stream().new_records()
    good = next(r for r in records if r["dynamodb"]["Keys"]["sk"]["S"].startswith("m#"))
    poison = json.loads(json.dumps(good))
    poison["dynamodb"]["NewImage"]["b"] = {"S": "{not json"}
    poison["dynamodb"]["SequenceNumber"] = "1"
    answer = client.lambda_.invoke("notify_subscribers", {"Records": [poison] + records})
    assert answer.payload == {"batchItemFailures": [{"itemIdentifier": "1"}]}
    assert receiver.bodies() == [{"ttl": 3600, "body": "fine",
                                  "Message_Type": "Notification", "queue_name": "news"}]


def test_a_queue_whose_subscriptions_cannot_be_read_fails_its_records(
        client, notify, receiver, monkeypatch):
    subscribe(client, receiver.url)
    subscribe(client, receiver.url, queue="/v2/queues/healthy")
    post(client, "a")
    post(client, "b", queue="/v2/queues/healthy")
    records = notify.stream.new_records()
    real = store.list_live

    def failing(pq):
        if pq.endswith("/news"):
            raise ServiceUnavailable()
        return real(pq)
    monkeypatch.setattr(store, "list_live", failing)
    answer = client.lambda_.invoke("notify_subscribers", {"Records": records}).payload
    news = [r["dynamodb"]["SequenceNumber"] for r in records
            if r["dynamodb"]["Keys"]["pq"]["S"].endswith("/news")
            and r["dynamodb"]["Keys"]["sk"]["S"].startswith("m#")]
    assert answer == {"batchItemFailures": [{"itemIdentifier": s} for s in news]}
    assert receiver.bodies()[0]["body"] == "b"


def test_webhooks_into_refused_networks_are_checked_again_at_delivery(
        client, notify, receiver, monkeypatch):
    sid = subscribe(client, receiver.url)  # allowed when subscribed
    stage_settings = config.get_settings
    monkeypatch.setattr(app_module, "get_settings", lambda: dataclasses.replace(
        stage_settings(), webhook_allowed_networks=""))
    post(client, "blocked")
    notify()
    assert receiver.received == []
    found = subscription(client, sid)
    assert found["failed_deliveries"] == 1
    assert "127.0.0.1: a loopback" in found["last_error"]["description"]


# -- confirmation -----------------------------------------------------------

@pytest.fixture
def confirming(monkeypatch):
    monkeypatch.setenv("REQUIRE_CONFIRMATION", "true")


def test_confirmation_comes_first_and_gates_delivery(client, notify, receiver, confirming):
    sid = subscribe(client, receiver.url)
    [request] = receiver.bodies()
    path = f"/v2/queues/news/subscriptions/{sid}/confirm"
    assert {key: request[key] for key in ("Message_Type", "Message", "URL-Methods",
                                          "URL-Paths", "X-Project-ID", "SubscribeBody",
                                          "UnsubscribeBody", "queue_name")} == {
        "Message_Type": "SubscriptionConfirmation",
        "Message": "You have chosen to subscribe to the queue: news",
        "URL-Methods": "PUT", "URL-Paths": path, "X-Project-ID": PROJECT,
        "SubscribeBody": {"confirmed": True}, "UnsubscribeBody": {"confirmed": False},
        "queue_name": "news"}
    key = config.get_settings().signed_url_secret_key
    assert request["URL-Signature"] == signing.signature(
        key, [path], ["PUT"], PROJECT, request["URL-Expires"])

    post(client, "too early")
    notify()
    assert len(receiver.received) == 1

    # The subscriber confirms with what it was sent.
    confirmed = client.http.put(request["URL-Paths"], body=json.dumps(request["SubscribeBody"]),
                                headers=headers(**{
                                    "URL-Signature": request["URL-Signature"],
                                    "URL-Methods": request["URL-Methods"],
                                    "URL-Paths": request["URL-Paths"],
                                    "URL-Expires": request["URL-Expires"]}))
    assert confirmed.status_code == 204
    post(client, "welcome")
    notify()
    assert receiver.bodies()[-1]["body"] == "welcome"
    assert len(receiver.received) == 2


def test_unconfirming_sends_a_notice_and_stops_delivery(client, notify, receiver, confirming):
    sid = subscribe(client, receiver.url)
    confirm = f"{QUEUE}/subscriptions/{sid}/confirm"
    client.http.put(confirm, headers=headers(), body=json.dumps({"confirmed": True}))
    client.http.put(confirm, headers=headers(), body=json.dumps({"confirmed": False}))
    notice = receiver.bodies()[-1]
    assert notice["Message_Type"] == "UnsubscribeConfirmation"
    assert notice["Message"] == ("You have unsubscribed successfully to the queue: news, "
                                 "you can resubscribe it by using confirmed=True.")
    post(client, "not for you")
    notify()
    assert [body["Message_Type"] for body in receiver.bodies()] == [
        "SubscriptionConfirmation", "UnsubscribeConfirmation"]


def test_a_duplicate_post_sends_the_confirmation_again(client, receiver, confirming):
    first = subscribe(client, receiver.url)
    assert subscribe(client, receiver.url) == first
    assert [body["Message_Type"] for body in receiver.bodies()] == [
        "SubscriptionConfirmation"] * 2


def test_a_confirmation_that_fails_is_retried_later(client, receiver, clock, confirming):
    receiver.answers = [500, 200]
    subscribe(client, receiver.url)
    assert len(receiver.received) == 1  # the API call makes one attempt only
    run_retries(clock)
    assert [body["Message_Type"] for body in receiver.bodies()] == [
        "SubscriptionConfirmation"] * 2


# -- mail -------------------------------------------------------------------

@pytest.fixture
def ses(monkeypatch):
    monkeypatch.setenv("SES_FROM_ADDRESS", SENDER)
    client = boto3.client("ses")
    for address in (SENDER, "team@example.com"):
        client.verify_email_identity(EmailAddress=address)
    return ses_backends[DEFAULT_ACCOUNT_ID][client.meta.region_name]


def test_mail_goes_through_ses(client, notify, ses):
    subscribe(client, "mailto:ops@example.com?subject=Queue%20news")
    subscribe(client, "mailto:dev@example.com",
              options={"from": "team@example.com", "subject": "From the queue"})
    post(client, {"n": 1}, ttl=120)
    notify()
    sent = {message.destinations["ToAddresses"][0]: message for message in ses.sent_messages}
    assert set(sent) == {"ops@example.com", "dev@example.com"}
    ops, dev = sent["ops@example.com"], sent["dev@example.com"]
    assert (ops.source, ops.subject) == (SENDER, "Queue news")
    assert (dev.source, dev.subject) == ("team@example.com", "From the queue")
    assert json.loads(ops.body) == {"ttl": 120, "body": {"n": 1},
                                    "Message_Type": "Notification", "queue_name": "news"}


def test_mail_confirmation_links_to_the_confirmation_page(client, ses, confirming, monkeypatch):
    monkeypatch.setenv("EXTERNAL_CONFIRMATION_URL", "https://confirm.example.com/")
    sid = subscribe(client, "mailto:ops@example.com")
    [mail] = ses.sent_messages
    assert (mail.source, mail.subject) == (SENDER, "Zaqar Notification - Subscription "
                                                   "Confirmation")
    assert mail.body.startswith(
        f"You have chosen to subscribe to the queue: news. This queue belongs to project: "
        f"{PROJECT}. To confirm this subscription, click or visit this link below: "
        "https://confirm.example.com/?Signature=")
    assert f"subscriptions%2F{sid}%2Fconfirm" in mail.body


def test_mail_that_ses_refuses_is_recorded(client, notify, ses):
    sid = subscribe(client, "mailto:ops@example.com", options={"from": "unverified@example.com"})
    post(client, "x")
    notify()
    assert ses.sent_messages == []
    description = subscription(client, sid)["last_error"]["description"]
    assert description.startswith("SES refused the mail: MessageRejected")


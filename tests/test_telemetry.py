"""What an operator reads on stdout (CloudWatch Logs on AWS): one JSON line
per REST request or websocket frame, with the request id the client got,
and the counters as one CloudWatch EMF line per invocation."""
import contextvars
import json
import threading

import pytest
from test_notifications import Stream, post, subscribe
from test_websocket import Gateway

import app as app_module
from chalicelib import telemetry
from conftest import headers

GATEWAY_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def lines(capsys):
    """The JSON lines written to stdout so far."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()
            if line.startswith("{")]


def request_lines(found):
    return [line for line in found if line.get("kind") in ("request", "frame")]


def emf_lines(found):
    return [line for line in found if "_aws" in line]


def metrics_of(line):
    [directive] = line["_aws"]["CloudWatchMetrics"]
    return {metric["Name"]: line[metric["Name"]] for metric in directive["Metrics"]}


def test_each_request_has_one_line_with_the_id_the_client_got(client, capsys):
    created = client.http.put("/v2/queues/q1", headers=headers(), body="{}")
    missing = client.http.get("/v2/queues/nope/messages/abc", headers=headers())
    [first, second] = request_lines(lines(capsys))
    assert first["request_id"] == created.headers["x-openstack-request-id"]
    assert second["request_id"] == missing.headers["x-openstack-request-id"]
    assert first["request_id"] != second["request_id"]
    assert {key: first[key] for key in ("level", "service", "method", "route", "action",
                                        "project", "queue", "status")} == {
        "level": "INFO", "service": "zaqar", "method": "PUT",
        "route": "/v2/queues/{queue_name}", "action": "queues:create",
        "project": "test-project", "queue": "q1", "status": 201}
    assert first["message"] == "PUT /v2/queues/q1 201"
    assert second["status"] == 404 and second["action"] == "messages:get"
    assert isinstance(first["latency_ms"], float) and first["latency_ms"] >= 0
    assert first["timestamp"].endswith("Z")


def test_refused_and_fallback_requests_are_logged_too(client, capsys):
    refused = client.http.get("/v2/queues", headers={"X-Project-ID": "p"})  # no Client-ID
    options = client.http.options("/v2/queues")
    found = request_lines(lines(capsys))
    assert [(line["status"], line["action"], line["project"]) for line in found] == [
        (400, "queues:get_all", None), (200, "options", None)]
    assert [line["request_id"] for line in found] == [
        refused.headers["x-openstack-request-id"], options.headers["x-openstack-request-id"]]


def gateway_event(method, path, resource, path_parameters, body=None):
    """An API Gateway proxy event, with its request id."""
    return {"httpMethod": method, "path": path, "resource": resource,
            "headers": {key.lower(): value for key, value in headers().items()},
            "multiValueQueryStringParameters": None, "pathParameters": path_parameters,
            "stageVariables": None, "body": body, "isBase64Encoded": False,
            "requestContext": {"httpMethod": method, "resourcePath": resource,
                               "path": f"/api{path}", "stage": "api",
                               "requestId": GATEWAY_ID, "apiId": "abc123",
                               "identity": {"sourceIp": "127.0.0.1"}}}


class LambdaContext:
    aws_request_id = "8f5a3c2e-0000-4000-8000-lambda000001"
    function_name = "zaqar-serverless-dev"
    memory_limit_in_mb = 256


def test_the_id_is_api_gateways_and_the_line_names_the_lambda_call_and_trace(
        app, capsys, monkeypatch):
    monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE)
    response = app(gateway_event("PUT", "/v2/queues/q1", "/v2/queues/{queue_name}",
                                 {"queue_name": "q1"}, "{}"), LambdaContext())
    assert response["statusCode"] == 201
    assert response["headers"]["x-openstack-request-id"] == f"req-{GATEWAY_ID}"
    [line] = request_lines(lines(capsys))
    assert line["request_id"] == f"req-{GATEWAY_ID}"
    assert line["gateway_request_id"] == GATEWAY_ID
    assert line["path"] == "/api/v2/queues/q1"
    assert line["function_request_id"] == LambdaContext.aws_request_id
    assert line["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"


def test_message_counts_go_out_as_one_emf_line_per_request(client, capsys):
    messages = json.dumps({"messages": [{"body": n} for n in range(3)]})
    client.http.post("/v2/queues/q1/messages", headers=headers(), body=messages)
    posted = lines(capsys)
    client.http.get("/v2/queues/q1/messages?echo=true", headers=headers())
    listed = lines(capsys)
    claim = client.http.post("/v2/queues/q1/claims?limit=2", headers=headers(),
                             body="{}").json_body
    claimed = lines(capsys)
    held = [message["href"].split("/")[-1].split("?")[0] for message in claim["messages"]]
    client.http.delete(f"/v2/queues/q1/messages?ids={','.join(held)}", headers=headers())
    deleted = lines(capsys)
    client.http.delete("/v2/queues/q1/messages?pop=5", headers=headers())
    popped = lines(capsys)

    assert emf_lines(listed) == []  # nothing counted, nothing written
    [line] = emf_lines(posted)
    assert line["_aws"]["CloudWatchMetrics"] == [{
        "Namespace": "Zaqar", "Dimensions": [["Stage"]],
        "Metrics": [{"Name": "MessagesPosted", "Unit": "Count"}]}]
    assert isinstance(line["_aws"]["Timestamp"], int)
    assert line["Stage"] == "dev" and line["MessagesPosted"] == 3
    assert line["request_id"] == request_lines(posted)[0]["request_id"]
    assert [metrics_of(line) for line in emf_lines(claimed + deleted + popped)] == [
        {"MessagesClaimed": 2}, {"MessagesDeleted": 2}, {"MessagesDeleted": 1}]


def test_a_claim_of_dead_letters_counts_them(client, capsys):
    client.http.put("/v2/queues/dlq", headers=headers(), body="{}")
    client.http.put("/v2/queues/q1", headers=headers(), body=json.dumps(
        {"_max_claim_count": 1, "_dead_letter_queue": "dlq"}))
    client.http.post("/v2/queues/q1/messages", headers=headers(),
                     body=json.dumps({"messages": [{"body": 1}]}))
    claim = client.http.post("/v2/queues/q1/claims", headers=headers(), body="{}")
    client.http.delete(claim.headers["Location"], headers=headers())
    capsys.readouterr()
    again = client.http.post("/v2/queues/q1/claims", headers=headers(), body="{}")
    assert again.status_code == 204  # the message went to the dead-letter queue
    [line] = emf_lines(lines(capsys))
    assert metrics_of(line) == {"MessagesDeadLettered": 1}


def test_each_websocket_frame_has_its_line(app, monkeypatch, capsys):
    gateway = Gateway()
    monkeypatch.setattr(app.websocket_api, "send", gateway.send)
    connection = gateway.connect()
    connection.ask("queue_create", {"queue_name": "q1"})
    connection.ask("message_post", {"queue_name": "q1", "messages": [{"body": 1}]})
    connection.send_raw("not json")
    found = lines(capsys)
    assert [(line["frame_action"], line["action"], line["queue"], line["status"],
             line["connection_id"]) for line in request_lines(found)] == [
        ("queue_create", "queues:create", "q1", 201, connection.id),
        ("message_post", "messages:create", "q1", 201, connection.id),
        (None, None, None, 400, connection.id)]
    assert all(line["project"] == "test-project" for line in request_lines(found)[:2])
    assert [metrics_of(line) for line in emf_lines(found)] == [{"MessagesPosted": 1}]


def test_a_stream_batch_failure_is_counted(app, capsys, monkeypatch):
    from chalicelib.storage import stats
    monkeypatch.setattr(stats, "apply_stream_records",
                        lambda records: [record["dynamodb"]["SequenceNumber"]
                                         for record in records])
    event = {"Records": [{"eventID": "1", "eventName": "INSERT",
                          "eventSourceARN": app_module.MESSAGES_STREAM_ARN,
                          "dynamodb": {"SequenceNumber": "100", "Keys": {}}}]}
    answer = app_module.count_messages(event, LambdaContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "100"}]}
    [line] = emf_lines(lines(capsys))
    assert metrics_of(line) == {"StreamBatchFailures": 1}
    assert line["function"] == "count_messages"


def test_failed_delivery_attempts_count_for_the_stream_call(client, receiver, capsys,
                                                            monkeypatch):
    monkeypatch.setenv("WEBHOOK_TIMEOUT", "1")  # within the test client's 3 s
    receiver.answers = [500, 502, 200]
    subscribe(client, receiver.url)
    post(client, "again")
    capsys.readouterr()
    records = Stream().new_records()
    assert client.lambda_.invoke("notify_subscribers", {"Records": records}).payload == {
        "batchItemFailures": []}
    [line] = emf_lines(lines(capsys))
    assert metrics_of(line) == {"DeliveriesFailed": 2}  # made from the pool's threads
    assert line["function"] == "notify_subscribers"


def test_counts_from_worker_threads_add_up_in_one_line(capsys):
    opened = telemetry.invocation("run", function="test")

    def work():
        for _ in range(100):
            telemetry.count(telemetry.DELIVERIES_FAILED)
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(work,))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    telemetry.count(telemetry.CLAIM_RACES_LOST, 2)
    telemetry.finish(opened, stage="prod")
    telemetry.count(telemetry.CLAIM_RACES_LOST)  # after the end: counted nowhere
    [line] = lines(capsys)
    assert metrics_of(line) == {"ClaimRacesLost": 2, "DeliveriesFailed": 400}
    assert line["Stage"] == "prod" and line["function"] == "test"


@pytest.mark.parametrize("header,expected", [
    (TRACE, "1-5759e988-bd862e3fe1be46a994272793"),
    ("Parent=53995c3f42cd8ad8;Sampled=0", None), ("", None)])
def test_the_trace_id_is_read_for_each_invocation(monkeypatch, header, expected):
    monkeypatch.setenv("_X_AMZN_TRACE_ID", header)
    assert telemetry.trace_id() == expected

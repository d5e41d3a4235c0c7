"""The HTTP helpers the API tests share: requests through the Chalice test
client as a Zaqar client would make them, and what an error answer holds."""
import json

from conftest import CLIENT_ID, PROJECT, headers

MESSAGES = "/v2/queues/q/messages"
# A second client of the same project: with echo off, the poster does not see
# its own messages, so listings are read as this consumer.
CONSUMER = "7f1e5b8a-4c0d-4f7e-9a51-0e6b2c3d4f5a"


def call(client, method, path, body=None, project=PROJECT, client_id=CLIENT_ID):
    """One request; `body` is sent as JSON unless it is already text."""
    if body is not None and not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    return client.http.request(method, path, body=body or b"",
                               headers=headers(project, client_id,
                                               content_type="application/json"))


def post_messages(client, messages, queue="q", **who):
    """Post a batch; returns the new ids."""
    response = call(client, "POST", f"/v2/queues/{queue}/messages",
                    {"messages": messages}, **who)
    assert response.status_code == 201, response.body
    return [href.rsplit("/", 1)[1] for href in response.json_body["resources"]]


def list_messages(client, query="", queue="q", **who):
    """A listing as the consumer sees it (unless `who` says otherwise)."""
    who.setdefault("client_id", CONSUMER)
    response = call(client, "GET", f"/v2/queues/{queue}/messages{query}", **who)
    assert response.status_code == 200, response.body
    return response.json_body


def listed_ids(client, query="", queue="q", **who):
    return [message["id"] for message in
            list_messages(client, query, queue, **who)["messages"]]


def claim(client, body=None, query="", queue="q", **who):
    """Claim messages; returns (claim id, claimed messages) or (None, [])."""
    response = call(client, "POST", f"/v2/queues/{queue}/claims{query}", body, **who)
    if response.status_code == 204:
        return None, []
    assert response.status_code == 201, response.body
    return (response.headers["Location"].rsplit("/", 1)[1],
            response.json_body["messages"])


def get_message(client, message_id, queue="q", **who):
    return call(client, "GET", f"/v2/queues/{queue}/messages/{message_id}", **who)


def error(status, title, description):
    """What an error response holds: status and body."""
    return status, {"title": title, "description": description}


def status_and_body(response):
    return response.status_code, response.json_body


def create_queue(client, metadata, queue="q"):
    response = call(client, "PUT", f"/v2/queues/{queue}", metadata)
    assert response.status_code == 201, response.body


def queue_names(client, project=PROJECT):
    response = call(client, "GET", "/v2/queues", project=project)
    return [queue["name"] for queue in response.json_body["queues"]]


def delete_message(client, message_id, claim_id=None, **who):
    query = "" if claim_id is None else f"?claim_id={claim_id}"
    return call(client, "DELETE", f"{MESSAGES}/{message_id}{query}", **who)


NO_CLAIM_ERROR = error(400, "Unable to delete",
                       "The specified claim does not exist or has expired.")

"""The pools and flavors routes (contract §3.6-3.7) over the REST API: admin
only, on stages with admin_mode and pooling (404 otherwise, as Zaqar);
Zaqar's bodies, statuses and errors; a queue of a flavor served from its
pool through every route."""
import dataclasses
import json

import pytest
import test_websocket

from chalicelib import config, rest
from chalicelib.storage import places
from chalicelib.storage.models import MessageRecord, queue_key
from conftest import headers
from local.tables import create_pool_table

# The websocket tests' fixture: frames handed to the app's handlers.
gateway = test_websocket.gateway

URI = "dynamodb://us-east-1/pool-one"
ADMIN = {"X_Roles": "admin"}


@pytest.fixture
def pooling(client, monkeypatch):
    """A pooling stage (the dev stage's variables, pooling on) with a pool's
    tables at URI."""
    stage_settings = config.get_settings
    monkeypatch.setattr(rest, "get_settings", lambda: dataclasses.replace(
        stage_settings(), pooling=True))
    create_pool_table(URI)
    return client


def put(client, path, body, **extra):
    return client.http.put(path, headers=headers(**{**ADMIN, **extra}), body=json.dumps(body))


def test_pool_and_flavor_lifecycle(pooling):
    created = put(pooling, "/v2/pools/one", {"weight": 10, "uri": URI, "options": {"a": 1}})
    assert (created.status_code, created.headers["Location"]) == (201, "/v2/pools/one")
    assert put(pooling, "/v2/pools/one", {"weight": 10, "uri": URI}).status_code == 409
    shown = pooling.http.get("/v2/pools/one?detailed=true", headers=headers(**ADMIN)).json_body
    assert shown == {"name": "one", "uri": URI, "weight": 10, "flavor": None,
                     "href": "/v2/pools/one", "options": {"a": 1}}
    listed = pooling.http.get("/v2/pools", headers=headers(**ADMIN))
    assert [pool["name"] for pool in listed.json_body["pools"]] == ["one"]
    assert listed.json_body["links"] == [{"rel": "next", "href": "/v2/pools?marker=one"}]
    assert listed.headers["Content-Location"] == "/v2/pools"

    flavor = put(pooling, "/v2/flavors/gold", {"pool_list": ["one"]})
    assert (flavor.status_code, flavor.headers["Location"]) == (201, "/v2/flavors/gold")
    assert pooling.http.get("/v2/flavors/gold", headers=headers()).json_body == {
        "name": "gold", "href": "/v2/flavors/gold", "pool_list": ["one"],
        "capabilities": ["FIFO", "CLAIMS", "DURABILITY", "AOD", "HIGH_THROUGHPUT"]}
    patched = pooling.http.patch("/v2/pools/one", headers=headers(**ADMIN),
                                 body=json.dumps({"weight": 5}))
    assert (patched.status_code, patched.json_body["weight"], patched.json_body["flavor"]) == (
        200, 5, "gold")

    refused = pooling.http.delete("/v2/pools/one", headers=headers(**ADMIN))
    assert refused.status_code == 403
    assert refused.json_body["title"] == "Unable to delete"
    assert pooling.http.delete("/v2/flavors/gold", headers=headers(**ADMIN)).status_code == 204
    assert pooling.http.delete("/v2/pools/one", headers=headers(**ADMIN)).status_code == 204
    assert pooling.http.get("/v2/pools/one", headers=headers(**ADMIN)).status_code == 404


@pytest.mark.parametrize(("body", "wanted"), [
    ({"uri": URI}, "'weight' is a required property"),
    ({"weight": 1}, "'uri' is a required property"),
    ({"weight": -1, "uri": URI}, "The weight must be an integer from 0 to 4294967295."),
    ({"weight": 1, "uri": URI, "group": "x"}, None),
    ({"weight": 1, "uri": "mongodb://127.0.0.1:27017"}, None),
    ({"weight": 1, "uri": "dynamodb://us-east-1/no-such-tables"},
     "cannot connect to dynamodb://us-east-1/no-such-tables"),
])
def test_a_bad_pool_is_refused_and_registers_nothing(pooling, body, wanted):
    refused = put(pooling, "/v2/pools/bad", body)
    assert refused.status_code == 400
    assert set(refused.json_body) == {"title", "description"}
    if wanted:
        assert refused.json_body["description"] == wanted
    assert pooling.http.get("/v2/pools/bad", headers=headers(**ADMIN)).status_code == 404


def test_flavor_and_patch_refusals(pooling):
    put(pooling, "/v2/pools/one", {"weight": 1, "uri": URI})
    for body in ({"pool_list": []}, {}, {"pool_list": ["nowhere"]}):
        assert put(pooling, "/v2/flavors/gold", body).status_code == 400
    assert pooling.http.get("/v2/flavors/gold", headers=headers()).status_code == 404
    empty = pooling.http.patch("/v2/pools/one", headers=headers(**ADMIN), body="{}")
    assert empty.status_code == 400
    assert "needs to be specified" in empty.json_body["description"]


def test_only_admins_manage_pools(pooling):
    assert put(pooling, "/v2/pools/one", {"weight": 1, "uri": URI},
               X_Roles="member").status_code == 403
    member = headers(X_Roles="member")
    assert pooling.http.get("/v2/pools", headers=member).status_code == 403
    assert pooling.http.get("/v2/flavors", headers=member).status_code == 200


def test_without_pooling_the_routes_are_absent(client):
    answer = client.http.get("/v2/pools", headers=headers(**ADMIN))
    assert (answer.status_code, answer.json_body) == (404, {"title": "404 Not Found"})
    assert put(client, "/v2/flavors/gold", {"pool_list": ["one"]}).status_code == 404


def test_a_queue_of_a_flavor_is_served_from_its_pool(pooling):
    put(pooling, "/v2/pools/one", {"weight": 1, "uri": URI})
    put(pooling, "/v2/flavors/gold", {"pool_list": ["one"]})
    assert put(pooling, "/v2/queues/placed", {"_flavor": "gold"}).status_code == 201
    posted = pooling.http.post("/v2/queues/placed/messages", headers=headers(),
                               body=json.dumps({"messages": [{"body": n} for n in range(3)]}))
    ids = [href.rsplit("/", 1)[1] for href in posted.json_body["resources"]]
    claimed = pooling.http.post("/v2/queues/placed/claims?limit=2", headers=headers(),
                                body=json.dumps({"ttl": 60}))
    assert [m["body"] for m in claimed.json_body["messages"]] == [0, 1]
    claim_href = claimed.headers["Location"]
    deleted = pooling.http.delete(
        f"/v2/queues/placed/messages/{ids[0]}?claim_id={claim_href.rsplit('/', 1)[1]}",
        headers=headers())
    assert deleted.status_code == 204
    stats = pooling.http.get("/v2/queues/placed/stats", headers=headers()).json_body
    assert stats["messages"]["free"] == 1
    with places.at(URI):
        stored = {item.sk for item in MessageRecord.query(queue_key("test-project", "placed"))}
    assert {f"m#{ids[1]}", f"m#{ids[2]}"} <= stored and f"m#{ids[0]}" not in stored
    assert list(MessageRecord.query(queue_key("test-project", "placed"))) == []

    unknown = put(pooling, "/v2/queues/other", {"_flavor": "silver"})
    assert (unknown.status_code, unknown.json_body["description"]) == (
        400, "Flavor silver does not exist.")


def test_pools_and_flavors_over_the_websocket(pooling, monkeypatch, gateway):
    monkeypatch.setenv("POOLING", "true")
    ws = gateway.connect()
    admin = {"X_Roles": "admin"}
    created = ws.ask("pool_create", {"pool_name": "one", "weight": 2, "uri": URI}, **admin)
    assert (created["headers"]["status"], created["body"]) == (201, "Pool one created.")
    assert ws.ask("pool_create", {"pool_name": "one", "weight": 2, "uri": URI},
                  **admin)["headers"]["status"] == 409
    assert ws.ask("flavor_create", {"flavor_name": "gold", "pool_list": ["one"]},
                  **admin)["headers"]["status"] == 201
    shown = ws.ask("pool_get", {"pool_name": "one"}, **admin)["body"]
    assert (shown["weight"], shown["flavor"]) == (2, "gold")
    assert ws.ask("flavor_get", {"flavor_name": "gold"})["body"]["pool_list"] == ["one"]
    assert [pool["name"] for pool in ws.ask("pool_list", {}, **admin)["body"]["pools"]] == [
        "one"]
    refused = ws.ask("pool_delete", {"pool_name": "one"}, **admin)
    assert (refused["headers"]["status"], refused["body"]["error"]) == (403, "Unable to delete")
    assert ws.ask("pool_create", {"pool_name": "one"}, X_Roles="member")["headers"][
        "status"] == 403
    assert ws.ask("queue_create", {"queue_name": "placed", "metadata": {"_flavor": "gold"}})[
        "headers"]["status"] == 201
    assert ws.ask("message_post", {"queue_name": "placed", "messages": [{"body": 1}]})[
        "headers"]["status"] == 201
    with places.at(URI):
        assert len(list(MessageRecord.query(queue_key("test-project", "placed")))) == 2


def test_health_reports_the_catalogue_and_each_pool(pooling):
    put(pooling, "/v2/pools/one", {"weight": 1, "uri": URI})
    report = pooling.http.get("/v2/health", headers=headers(**ADMIN)).json_body
    assert set(report) == {"catalog_reachable", "one"}
    assert report["catalog_reachable"] is True
    assert report["one"]["storage_reachable"] is True
    assert all(step["succeeded"] for step in report["one"]["operation_status"].values())
    assert len(report["one"]["operation_status"]) == 8

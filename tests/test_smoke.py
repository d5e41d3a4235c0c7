import json

from conftest import headers


def test_queue_roundtrip(client):
    r = client.http.put("/v2/queues/q1", headers=headers(), body=json.dumps({"a": 1}))
    assert r.status_code == 201, r.body
    assert r.headers["Location"] == "/v2/queues/q1"
    r = client.http.get("/v2/queues/q1", headers=headers())
    assert r.status_code == 200
    assert r.json_body["a"] == 1
    assert r.json_body["_default_message_ttl"] == 3600
    r = client.http.get("/v2/queues", headers=headers())
    assert [q["name"] for q in r.json_body["queues"]] == ["q1"]

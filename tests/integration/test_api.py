"""The real Flask app on real Postgres and Redis: validation, idempotency, listing, cancel,
events, errors, auth, fleet endpoints and the OpenAPI document."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import redis

from cca_api import create_app
from cca_core.infra.db import transaction
from cca_core.infra.migrate import head_revision
from cca_core.names import queue_keys
from cca_core.tasks import store

pytestmark = pytest.mark.integration


@pytest.fixture
def app(make_settings):
    return create_app(make_settings())


@pytest.fixture
def client(app):
    return app.test_client()


def submit(client, **body):
    return client.post("/api/v1/tasks", json={"prompt": "fix the failing test", **body})


def queued_messages(redis_client: redis.Redis, queue: str = "cca") -> list[dict]:
    messages = []
    for key in queue_keys(queue):
        messages += [json.loads(raw) for raw in redis_client.lrange(key, 0, -1)]
    return messages


def test_submit_stores_the_task_and_enqueues_only_its_id(client, redis_client):
    response = submit(client, role="qa", priority="high", metadata={"pr": 42})
    assert response.status_code == 202
    task = response.get_json()
    assert task["status"] == "queued"
    assert task["role"] == "qa" and task["metadata"] == {"pr": 42}
    assert task["token_budget"] == 100000 and task["timeout_seconds"] == 600
    assert task["usage"] == {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0,
                             "cache_creation_input_tokens": 0}
    messages = queued_messages(redis_client)
    assert len(messages) == 1
    assert messages[0]["headers"]["task"] == "cca.run_agent"
    assert messages[0]["headers"]["argsrepr"] == f"{task['id']} · fix the failing test"
    args, kwargs, _ = json.loads(base64.b64decode(messages[0]["body"]))
    assert (args, kwargs) == ([task["id"]], {})


def test_every_field_of_a_task_is_returned(client):
    task = submit(client).get_json()
    shown = client.get(f"/api/v1/tasks/{task['id']}").get_json()
    for field in ("id", "status", "prompt", "role", "model", "priority", "token_budget",
                  "timeout_seconds", "max_turns", "max_budget_usd", "permission_mode",
                  "allowed_tools", "denied_tools", "cwd", "json_schema", "metadata", "queue",
                  "result", "structured_output", "error", "usage", "cost_usd", "num_turns",
                  "session_id", "permission_denials", "worker", "attempts", "created_at",
                  "started_at", "finished_at"):
        assert field in shown, field


def test_same_idempotency_key_returns_the_same_task_and_sends_a_queued_one_again(
        client, redis_client, app):
    first = client.post("/api/v1/tasks", json={"prompt": "a"}, headers={"Idempotency-Key": "k-1"})
    redis_client.flushdb()  # as if the API process died between the row and its message
    second = client.post("/api/v1/tasks", json={"prompt": "a"}, headers={"Idempotency-Key": "k-1"})
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.get_json()["id"] == second.get_json()["id"]
    assert [json.loads(base64.b64decode(m["body"]))[0] for m in queued_messages(redis_client)] == [
        [first.get_json()["id"]]]
    with transaction(app.extensions["cca"].sessions) as session:
        store.claim_task(session.connection(), first.get_json()["id"], worker="w", pid=1, lease_s=60,
                         max_attempts=3)
    third = client.post("/api/v1/tasks", json={"prompt": "a"}, headers={"Idempotency-Key": "k-1"})
    assert third.status_code == 200 and third.get_json()["status"] == "running"
    assert len(queued_messages(redis_client)) == 1  # a task a worker took is not sent again
    other = client.post("/api/v1/tasks", json={"prompt": "a"}, headers={"Idempotency-Key": "k-2"})
    assert other.get_json()["id"] != first.get_json()["id"]


@pytest.mark.parametrize(("body", "field"), [
    ({}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "x" * 100_001}, "prompt"),
    ({"prompt": "x", "priority": "urgent"}, "priority"),
    ({"prompt": "x", "token_budget": 0}, "token_budget"),
    ({"prompt": "x", "timeout_seconds": "soon"}, "timeout_seconds"),
    ({"prompt": "x", "permission_mode": "yolo"}, "permission_mode"),
    ({"prompt": "x", "allowed_tools": "Bash"}, "allowed_tools"),
    ({"prompt": "x", "queue": "bad queue!"}, "queue"),
    ({"prompt": "x", "colour": "blue"}, "colour"),
    ({"prompt": "x", "cwd": "/etc"}, "cwd"),
    ({"prompt": "x", "cwd": "relative/path"}, "cwd"),
    ({"prompt": "x", "permission_mode": "dangerous"}, "permission_mode"),
    ({"prompt": "x", "repo": "/etc"}, "repo"),
    ({"prompt": "x", "repo": "/tmp/r", "cwd": "/tmp/r"}, "repo"),
    ({"prompt": "x", "base": "main"}, "base"),
    ({"prompt": "x", "push": True}, "push"),
    ({"prompt": "x", "repo": "/tmp/r", "base": "--upload-pack=x"}, "base"),
])
def test_bad_input_is_a_422_naming_the_field_and_stores_nothing(client, body, field, redis_client):
    response = client.post("/api/v1/tasks", json=body)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["field"] == field and error["code"] == "invalid" and error["message"]
    assert client.get("/api/v1/tasks").get_json()["tasks"] == []
    assert queued_messages(redis_client) == []


def test_a_cwd_inside_an_allowed_root_is_accepted(client, config_data, tmp_path):
    repo = tmp_path / "roots/repo"
    repo.mkdir()
    response = submit(client, cwd=str(repo))
    assert response.status_code == 202


def test_malformed_bodies_get_the_json_error_shape(client):
    not_json = client.post("/api/v1/tasks", data="{", content_type="application/json")
    assert not_json.status_code == 400 and not_json.get_json()["error"]["code"] == "bad_request"
    as_form = client.post("/api/v1/tasks", data="prompt=x", content_type="text/plain")
    assert as_form.status_code == 415
    a_list = client.post("/api/v1/tasks", json=["prompt"])
    assert a_list.status_code == 400
    huge = client.post("/api/v1/tasks", data=json.dumps({"prompt": "x" * (2 << 20)}),
                       content_type="application/json")
    assert huge.status_code == 413 and huge.get_json()["error"]["code"] == "too_large"


def test_unknown_routes_and_methods_answer_json(client):
    missing = client.get("/api/v1/nothing")
    assert missing.status_code == 404 and missing.is_json
    wrong = client.delete("/api/v1/tasks")
    assert wrong.status_code == 405 and wrong.get_json()["error"]["code"] == "method_not_allowed"


def test_unknown_and_malformed_task_ids_are_404(client):
    assert client.get(f"/api/v1/tasks/{uuid.uuid4()}").status_code == 404
    assert client.get("/api/v1/tasks/not-a-uuid").status_code == 404
    assert client.post("/api/v1/tasks/not-a-uuid/cancel").status_code == 404


def test_listing_pages_through_every_task_once_newest_first(client):
    ids = [submit(client, role="backend" if i % 2 else "frontend").get_json()["id"] for i in range(7)]
    seen, cursor = [], None
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/tasks", query_string=query).get_json()
        seen += [task["id"] for task in page["tasks"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    only_a = client.get("/api/v1/tasks", query_string={"role": "backend"}).get_json()["tasks"]
    assert {task["id"] for task in only_a} == set(ids[1::2])


@pytest.mark.parametrize(("query", "field"), [
    ({"status": "done"}, "status"), ({"limit": 0}, "limit"), ({"limit": 1000}, "limit"),
    ({"cursor": "garbage"}, "cursor"), ({"colour": "x"}, "colour"),
])
def test_bad_list_queries_name_the_parameter(client, query, field):
    response = client.get("/api/v1/tasks", query_string=query)
    assert response.status_code == 422 and response.get_json()["error"]["field"] == field


def test_status_filter(client, app):
    task = submit(client).get_json()
    submit(client)
    client.post(f"/api/v1/tasks/{task['id']}/cancel")
    cancelled = client.get("/api/v1/tasks", query_string={"status": "cancelled"}).get_json()
    assert [t["id"] for t in cancelled["tasks"]] == [task["id"]]


def test_cancelling_a_queued_task_ends_it_and_a_second_cancel_conflicts(client, app):
    task = submit(client).get_json()
    cancelled = client.post(f"/api/v1/tasks/{task['id']}/cancel").get_json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"]
    again = client.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_finished"
    sessions = app.extensions["cca"].sessions
    with transaction(sessions) as session:
        claimed = store.claim_task(session.connection(), task["id"], worker="w", pid=1,
                                   lease_s=10, max_attempts=3)
    assert claimed is None


def test_events_are_returned_in_order_after_a_cursor(client, app):
    task = submit(client).get_json()
    with transaction(app.extensions["cca"].sessions) as session:
        store.append_events(session.connection(), task["id"], 1, [{"type": "system", "subtype": "init"},
                                                     {"type": "assistant"}, {"type": "result"}])
    page = client.get(f"/api/v1/tasks/{task['id']}/events").get_json()
    assert [e["type"] for e in page["events"]] == ["system", "assistant", "result"]
    first = page["events"][0]["id"]
    rest = client.get(f"/api/v1/tasks/{task['id']}/events", query_string={"after": first}).get_json()
    assert [e["type"] for e in rest["events"]] == ["assistant", "result"]
    assert client.get(f"/api/v1/tasks/{uuid.uuid4()}/events").status_code == 404


def test_health_reports_each_dependency(client):
    body = client.get("/health").get_json()
    assert body["postgres"]["ok"] and body["redis"]["ok"]
    assert body["workers"] == {"ok": True, "online": 0, "latency_ms": body["workers"]["latency_ms"]}
    assert body["status"] == "degraded"


def test_health_is_503_when_redis_is_down(make_settings):
    client = create_app(make_settings(redis={"url": "redis://127.0.0.1:1/0"})).test_client()
    response = client.get("/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "down" and body["redis"]["ok"] is False and body["postgres"]["ok"]


@pytest.mark.parametrize(("down", "path"), [
    ({"postgres": {"url": "postgresql://cca@127.0.0.1:1/cca"}}, "/api/v1/tasks"),
    ({"redis": {"url": "redis://127.0.0.1:1/0"}}, "/api/v1/status"),  # queue depths
], ids=["postgres", "redis"])
def test_an_unreachable_backing_service_is_a_503_that_says_so(make_settings, down, path):
    client = create_app(make_settings(**down)).test_client()
    response = client.get(path)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json()["error"]["code"] == "unavailable"


def test_status_counts_tasks_and_queue_depth(client):
    submit(client)
    submit(client, priority="critical")
    status = client.get("/api/v1/status").get_json()
    assert status["tasks"]["queued"] == 2
    assert status["queues"]["cca"] == 2
    assert status["workers"] == {"online": 0, "slots_total": 0, "slots_busy": 0}


def test_redis_and_postgres_status(client):
    redis_status = client.get("/api/v1/redis/status").get_json()["redis"]
    assert redis_status["ok"] and redis_status["redis_version"]
    postgres = client.get("/api/v1/postgres/status").get_json()["postgres"]
    assert postgres["server_version"].startswith("16")
    assert postgres["pgvector_version"]
    assert postgres["schema_revision"] == head_revision()
    assert set(postgres["pool"]) == {"size", "checked_out", "overflow"}


def test_auth_guards_everything_but_health(make_settings):
    keys = ["key-one-0123456789", "key-two-0123456789"]
    client = create_app(make_settings(daemon={"require_auth": True, "api_keys": keys})).test_client()
    assert client.get("/health").status_code in (200, 503)
    denied = client.get("/api/v1/status")
    assert denied.status_code == 401
    assert denied.get_json()["error"]["code"] == "unauthorized"
    assert "Bearer" in denied.headers["WWW-Authenticate"]
    assert client.get("/api/v1/status", headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/api/v1/openapi.json").status_code == 401
    assert client.get("/api/v1/status", headers={"X-API-Key": "key-two-0123456789"}).status_code == 200
    bearer = {"Authorization": "Bearer key-one-0123456789"}
    assert client.post("/api/v1/tasks", json={"prompt": "x"}, headers=bearer).status_code == 202


def test_openapi_document_describes_the_task_api(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/tasks", "/api/v1/tasks/{task_id}", "/api/v1/tasks/{task_id}/cancel",
            "/api/v1/tasks/{task_id}/events", "/health", "/api/v1/status"} <= set(spec["paths"])
    create = spec["components"]["schemas"]["TaskCreate"]
    assert create["required"] == ["prompt"]
    assert create["additionalProperties"] is False
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and b"/api/v1/tasks" in docs.data


def test_children_record_their_parent_and_depth(client):
    parent = submit(client).get_json()
    child = submit(client, parent_id=parent["id"]).get_json()
    assert (child["parent_id"], child["depth"]) == (parent["id"], 1)
    grandchild = submit(client, parent_id=child["id"]).get_json()
    assert grandchild["depth"] == 2
    children = client.get("/api/v1/tasks", query_string={"parent_id": parent["id"]}).get_json()
    assert [task["id"] for task in children["tasks"]] == [child["id"]]


def test_fan_out_is_bounded_in_depth_and_width(make_settings):
    client = create_app(make_settings(agents={"max_depth": 1, "max_children_per_task": 2})).test_client()
    root = submit(client).get_json()
    child = submit(client, parent_id=root["id"]).get_json()
    too_deep = submit(client, parent_id=child["id"])
    assert too_deep.status_code == 422
    assert too_deep.get_json()["error"]["code"] == "depth_limit"
    submit(client, parent_id=root["id"])
    too_wide = submit(client, parent_id=root["id"])
    assert too_wide.status_code == 422
    assert too_wide.get_json()["error"]["code"] == "children_limit"
    unknown = submit(client, parent_id=str(uuid.uuid4()))
    assert unknown.status_code == 422 and unknown.get_json()["error"]["field"] == "parent_id"

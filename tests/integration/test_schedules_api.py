"""The schedule API on the real Flask app, Postgres and Redis: validation, edits, pause and
resume, run now, history, ownership and roles, the OpenAPI document."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cca_api import create_app
from cca_core.names import queue_keys

pytestmark = pytest.mark.integration
ADMIN = "config-admin-key-0123456789"
NIGHTLY = {"name": "nightly-review", "cron": "0 7 * * 1-5", "timezone": "Europe/Berlin",
           "task": {"prompt": "review yesterday's commits", "role": "qa"}}


@pytest.fixture
def app(make_settings):
    return create_app(make_settings(daemon={"require_auth": True, "api_keys": [ADMIN]}))


@pytest.fixture
def client(app):
    client = app.test_client()
    client.environ_base["HTTP_X_API_KEY"] = ADMIN
    return client


def make_key(client, name: str, **fields) -> dict[str, str]:
    response = client.post("/api/v1/keys", json={"name": name, **fields})
    assert response.status_code == 201, response.get_json()
    return {"X-API-Key": response.get_json()["key"]}


def create(client, headers=None, **fields):
    return client.post("/api/v1/schedules", json={**NIGHTLY, **fields}, headers=headers or {})


def messages(redis_client) -> list[dict]:
    return [json.loads(raw) for key in queue_keys("cca") for raw in redis_client.lrange(key, 0, -1)]


def test_a_cron_schedule_is_stored_with_its_next_fire_in_its_time_zone(client):
    response = create(client)
    assert response.status_code == 201, response.get_json()
    schedule = response.get_json()
    assert (schedule["cron"], schedule["timezone"], schedule["interval_seconds"]) == (
        "0 7 * * 1-5", "Europe/Berlin", None)
    assert schedule["task"] == NIGHTLY["task"]
    assert (schedule["enabled"], schedule["overlap"], schedule["catchup"]) == (True, "skip", "skip_missed")
    next_fire = datetime.fromisoformat(schedule["next_fire_at"])
    local = next_fire.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (7, 0) and local.weekday() < 5
    assert client.get(f"/api/v1/schedules/{schedule['id']}").get_json() == schedule


def test_an_interval_schedule_fires_first_one_interval_after_it_is_made(client):
    schedule = create(client, name="triage", cron=None, timezone=None, interval_seconds=1800).get_json()
    created = datetime.fromisoformat(schedule["created_at"])
    assert abs(datetime.fromisoformat(schedule["next_fire_at"]) - created - timedelta(seconds=1800)) \
        < timedelta(seconds=5)


@pytest.mark.parametrize(("fields", "field"), [
    ({"cron": "0 7 * *"}, "cron"),
    ({"cron": "61 7 * * *"}, "cron"),
    ({"cron": "@daily"}, "cron"),
    ({"timezone": "Europe/Atlantis"}, "timezone"),
    ({"cron": None}, "cron"),
    ({"interval_seconds": 60}, "interval_seconds"),
    ({"cron": None, "interval_seconds": 0}, "interval_seconds"),
    ({"name": "has spaces"}, "name"),
    ({"overlap": "sometimes"}, "overlap"),
    ({"catchup": "all"}, "catchup"),
    ({"expires_seconds": 0}, "expires_seconds"),
    ({"task": {}}, "task.prompt"),
    ({"task": {"prompt": "p", "priority": "urgent"}}, "task.priority"),
    ({"task": {"prompt": "p", "cwd": "/etc"}}, "task.cwd"),
    ({"task": {"prompt": "p", "permission_mode": "dangerous"}}, "task.permission_mode"),
    ({"task": {"prompt": "p", "parent_id": str(uuid.uuid4())}}, "task.parent_id"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_input_is_a_422_naming_the_field_and_stores_nothing(client, fields, field):
    response = create(client, **fields)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("invalid", field) and error["message"]
    assert client.get("/api/v1/schedules").get_json()["schedules"] == []


def test_an_invalid_cron_expression_or_zone_says_what_is_wrong(client):
    error = create(client, cron="0 25 * * *").get_json()["error"]
    assert "not a valid cron expression" in error["message"] and "hour" in error["message"].lower()
    error = create(client, timezone="Mars/Base").get_json()["error"]
    assert "unknown time zone" in error["message"]


def test_names_are_unique_per_owner(client):
    create(client)
    taken = create(client)
    assert taken.status_code == 409 and taken.get_json()["error"]["field"] == "name"
    other_team = make_key(client, "ops", tenant="ops")
    assert create(client, other_team).status_code == 201
    second = create(client, name="second").get_json()
    renamed = client.patch(f"/api/v1/schedules/{second['id']}", json={"name": NIGHTLY["name"]})
    assert renamed.status_code == 409 and renamed.get_json()["error"]["code"] == "name_taken"


def test_patch_changes_only_the_fields_given(client):
    schedule = create(client).get_json()
    path = f"/api/v1/schedules/{schedule['id']}"
    changed = client.patch(path, json={"task": {"prompt": "review the last 2 days"},
                                       "overlap": "cancel_previous", "expires_seconds": 600}).get_json()
    assert changed["task"] == {"prompt": "review the last 2 days", "role": "qa"}
    assert (changed["overlap"], changed["expires_seconds"], changed["cron"]) == (
        "cancel_previous", 600, "0 7 * * 1-5")
    assert changed["next_fire_at"] == schedule["next_fire_at"]
    before = datetime.now(UTC)
    every = client.patch(path, json={"interval_seconds": 60}).get_json()
    assert (every["cron"], every["interval_seconds"]) == (None, 60)
    next_fire = datetime.fromisoformat(every["next_fire_at"])
    assert before < next_fire <= datetime.now(UTC) + timedelta(seconds=60)
    cleared = client.patch(path, json={"expires_seconds": None}).get_json()
    assert cleared["expires_seconds"] is None
    bad = client.patch(path, json={"task": {"token_budget": 0}})
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "task.token_budget"
    both = client.patch(path, json={"cron": "* * * * *", "interval_seconds": 5})
    assert both.status_code == 422


def test_pause_stops_the_next_fire_and_resume_sets_it_from_now(client):
    schedule = create(client, name="triage", cron=None, timezone=None, interval_seconds=60).get_json()
    paused = client.post(f"/api/v1/schedules/{schedule['id']}/pause").get_json()
    assert (paused["enabled"], paused["next_fire_at"]) == (False, None)
    resumed = client.post(f"/api/v1/schedules/{schedule['id']}/resume").get_json()
    assert resumed["enabled"] and resumed["next_fire_at"]


def test_run_now_queues_the_task_and_the_history_lists_it(client, redis_client):
    schedule = create(client, enabled=False).get_json()
    response = client.post(f"/api/v1/schedules/{schedule['id']}/run")
    assert response.status_code == 202
    task = response.get_json()
    assert (task["prompt"], task["role"], task["status"]) == ("review yesterday's commits", "qa",
                                                              "queued")
    assert [m["headers"]["argsrepr"].split(" · ")[0] for m in messages(redis_client)] == [task["id"]]
    second = client.post(f"/api/v1/schedules/{schedule['id']}/run").get_json()
    history = client.get(f"/api/v1/schedules/{schedule['id']}/runs").get_json()
    assert [run["task_id"] for run in history["runs"]] == [second["id"], task["id"]]
    assert history["runs"][0]["status"] == "queued" and history["runs"][0]["scheduled_for"]
    page = client.get(f"/api/v1/schedules/{schedule['id']}/runs", query_string={"limit": 1}).get_json()
    rest = client.get(f"/api/v1/schedules/{schedule['id']}/runs",
                      query_string={"limit": 1, "cursor": page["next_cursor"]}).get_json()
    assert [r["task_id"] for r in page["runs"] + rest["runs"]] == [second["id"], task["id"]]
    shown = client.get(f"/api/v1/schedules/{schedule['id']}").get_json()
    assert shown["last_task_id"] == second["id"]


def test_delete_removes_the_schedule_but_not_its_tasks(client):
    schedule = create(client).get_json()
    task = client.post(f"/api/v1/schedules/{schedule['id']}/run").get_json()
    assert client.delete(f"/api/v1/schedules/{schedule['id']}").status_code == 204
    assert client.get(f"/api/v1/schedules/{schedule['id']}").status_code == 404
    assert client.get(f"/api/v1/tasks/{task['id']}").status_code == 200
    assert client.delete(f"/api/v1/schedules/{schedule['id']}").status_code == 404


def test_other_tenants_schedules_are_404_and_readers_only_read(client):
    alice = make_key(client, "alice", tenant="web")
    bob = make_key(client, "bob", tenant="data")
    reader = make_key(client, "rita", role="reader", tenant="web")
    mine = create(client, alice).get_json()
    assert mine["owner"] == "web" and mine["created_by"] == "alice"
    for method, suffix in (("get", ""), ("patch", ""), ("delete", ""), ("post", "/run"),
                           ("post", "/pause"), ("post", "/resume"), ("get", "/runs")):
        response = getattr(client, method)(f"/api/v1/schedules/{mine['id']}{suffix}", headers=bob,
                                           **({"json": {"enabled": False}} if method == "patch" else {}))
        assert response.status_code == 404, (method, suffix)
    assert client.get("/api/v1/schedules", headers=bob).get_json()["schedules"] == []
    assert [s["id"] for s in client.get("/api/v1/schedules", headers=reader).get_json()["schedules"]] \
        == [mine["id"]]
    assert client.get(f"/api/v1/schedules/{mine['id']}/runs", headers=reader).status_code == 200
    assert create(client, reader, name="other").status_code == 403
    for method, suffix in (("delete", ""), ("post", "/run"), ("post", "/pause")):
        assert getattr(client, method)(f"/api/v1/schedules/{mine['id']}{suffix}",
                                       headers=reader).status_code == 403
    assert client.get(f"/api/v1/schedules/{mine['id']}").status_code == 200  # admins see all


def test_a_submitter_cannot_schedule_wider_permissions_than_its_role(client):
    submitter = make_key(client, "sam", tenant="web")
    wider = create(client, submitter, task={"prompt": "p", "allowed_tools": ["Bash(*)"]})
    assert wider.status_code == 403 and wider.get_json()["error"]["field"] == "task.allowed_tools"
    assert client.get("/api/v1/schedules").get_json()["schedules"] == []


def test_the_openapi_document_describes_the_schedule_endpoints(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert set(spec["paths"]["/api/v1/schedules/{schedule_id}"]) == {"get", "patch", "delete"}
    for path in ("/api/v1/schedules", "/api/v1/schedules/{schedule_id}/run",
                 "/api/v1/schedules/{schedule_id}/pause", "/api/v1/schedules/{schedule_id}/resume",
                 "/api/v1/schedules/{schedule_id}/runs"):
        assert path in spec["paths"], path
    create_schema = spec["components"]["schemas"]["ScheduleCreate"]
    assert {"name", "cron", "timezone", "interval_seconds", "task", "overlap", "catchup",
            "expires_seconds"} <= set(create_schema["properties"])

"""Every task field is narrowed per key (docs/security.md, item 6): a managed key's tasks stay
within its queues, roles, models, permission modes, caps and cwd roots, through the real app on
real Postgres and Redis; what a key may not have is refused naming the field, and nothing is
stored or queued."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from cca_api import create_app
from cca_core.names import queue_keys

pytestmark = pytest.mark.attack
ADMIN = "config-admin-key-0123456789"
ROLES = {"reviewer": {"model": "claude-haiku", "token_budget": 50_000},
         "builder": {"model": "claude-opus", "permissions": {"mode": "allowlist"}},
         "cheap": {"allowed_models": ["claude-haiku"], "allowed_queues": ["nightly"],
                   "max_token_budget": 1000, "max_budget_usd": 0.1}}


@pytest.fixture
def roots(config_data) -> Path:
    return Path(config_data["agents"]["allowed_roots"][0])


@pytest.fixture
def app(make_settings):
    return create_app(make_settings(
        daemon={"require_auth": True, "api_keys": [ADMIN]},
        agents={"roles": ROLES, "queues": ["cca", "nightly"], "token_budget_per_task": 100_000,
                "default_timeout_seconds": 600}))


@pytest.fixture
def client(app):
    return app.test_client()


def make_key(client, name: str, **limits) -> str:
    response = client.post("/api/v1/keys", json={"name": name, **limits},
                           headers={"X-API-Key": ADMIN})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["key"]


def submit(client, key: str, **body):
    return client.post("/api/v1/tasks", json={"prompt": "p", **body}, headers={"X-API-Key": key})


def refused(response, status: int, field: str) -> bool:
    return response.status_code == status and response.get_json()["error"]["field"] == field


def nothing_stored_or_queued(app, redis_client) -> bool:
    with app.extensions["cca"].engine.connect() as connection:
        rows = connection.execute(text("SELECT count(*) FROM tasks")).scalar()
    queued = sum(redis_client.llen(key) for queue in ("cca", "nightly", "elsewhere")
                 for key in queue_keys(queue))
    return rows == 0 and queued == 0


def test_a_queue_no_worker_consumes_is_refused_not_queued_forever(client, app, redis_client):
    answer = submit(client, ADMIN, queue="elsewhere")
    assert refused(answer, 422, "queue") and "not configured" in answer.get_json()["error"]["message"]
    assert nothing_stored_or_queued(app, redis_client)


def test_a_key_cannot_use_a_queue_it_is_not_allowed(client, app, redis_client):
    key = make_key(client, "web", allowed_queues=["nightly"])
    assert refused(submit(client, key, queue="cca"), 422, "queue")
    assert nothing_stored_or_queued(app, redis_client)
    assert submit(client, key).get_json()["queue"] == "nightly"  # its default is its queue


@pytest.mark.parametrize(("field", "value", "limits"), [
    ("role", "builder", {"allowed_roles": ["reviewer"]}),
    ("model", "claude-opus", {"allowed_models": ["claude-haiku"]}),
    ("permission_mode", "allowlist", {"allowed_permission_modes": ["sandbox"]}),
])
def test_a_key_cannot_ask_for_a_role_model_or_mode_it_is_not_allowed(client, app, redis_client,
                                                                    field, value, limits):
    key = make_key(client, "web", **limits)
    assert refused(submit(client, key, **{field: value}), 403, field)
    assert nothing_stored_or_queued(app, redis_client)


def test_what_a_key_leaves_out_is_chosen_within_its_limits(client):
    key = make_key(client, "web", allowed_roles=["reviewer"], allowed_models=["claude-sonnet"],
                   allowed_permission_modes=["sandbox"])
    task = submit(client, key).get_json()
    assert (task["role"], task["model"], task["permission_mode"]) == ("reviewer", "claude-sonnet",
                                                                      "sandbox")


@pytest.mark.parametrize(("field", "cap", "over"), [
    ("token_budget", "max_token_budget", 20_001),
    ("timeout_seconds", "max_timeout_seconds", 301),
    ("max_budget_usd", "max_budget_usd", 0.51),
])
def test_a_key_cannot_go_over_its_caps(client, app, redis_client, field, cap, over):
    key = make_key(client, "web", **{cap: {"max_budget_usd": 0.5}.get(cap, over - 1)})
    answer = submit(client, key, **{field: over})
    assert refused(answer, 403, field) and cap in answer.get_json()["error"]["message"]
    assert nothing_stored_or_queued(app, redis_client)


def test_a_key_that_leaves_out_a_capped_field_gets_at_most_the_cap(client):
    key = make_key(client, "web", max_token_budget=20_000, max_timeout_seconds=300,
                   max_budget_usd=0.5)
    task = submit(client, key).get_json()  # the fleet's defaults are 100,000, 600 s, no USD cap
    assert (task["token_budget"], task["timeout_seconds"], task["max_budget_usd"]) == (20_000, 300, 0.5)
    smaller = submit(client, key, token_budget=10, timeout_seconds=5, max_budget_usd=0.1).get_json()
    assert (smaller["token_budget"], smaller["timeout_seconds"], smaller["max_budget_usd"]) == (10, 5, 0.1)


@pytest.mark.parametrize(("field", "value"), [("model", "claude-opus"), ("queue", "cca"),
                                              ("token_budget", 5000), ("max_budget_usd", 5)])
def test_a_submitter_cannot_take_a_role_beyond_the_roles_limits(client, app, redis_client, field,
                                                                value):
    key = make_key(client, "web")
    answer = submit(client, key, role="cheap", **{field: value})
    assert refused(answer, 422 if field == "queue" else 403, field)
    assert nothing_stored_or_queued(app, redis_client)
    task = submit(client, key, role="cheap").get_json()
    assert (task["model"], task["queue"], task["token_budget"], task["max_budget_usd"]) == (
        "claude-haiku", "nightly", 1000, 0.1)
    assert submit(client, ADMIN, role="cheap", **{field: value}).status_code == 202  # admins may


def test_a_key_cannot_work_in_another_tenants_directory(client, app, redis_client, roots):
    (roots / "web" / "repo").mkdir(parents=True)
    (roots / "data").mkdir()
    (roots / "web-evil").mkdir()
    key = make_key(client, "web", cwd_roots=[str(roots / "web")])
    for elsewhere in (roots / "data", roots / "web-evil", roots / "web" / ".." / "data"):
        assert refused(submit(client, key, cwd=str(elsewhere)), 422, "cwd"), elsewhere
    (roots / "web" / "link").symlink_to(roots / "data")
    assert refused(submit(client, key, cwd=str(roots / "web" / "link")), 422, "cwd")
    assert nothing_stored_or_queued(app, redis_client)
    assert submit(client, key, cwd=str(roots / "web" / "repo")).status_code == 202


@pytest.mark.parametrize(("limits", "field"), [
    ({"cwd_roots": ["/etc"]}, "cwd_roots[0]"),
    ({"allowed_queues": ["cca", "elsewhere"]}, "allowed_queues[1]"),
    ({"allowed_roles": ["root"]}, "allowed_roles[0]"),
    ({"allowed_permission_modes": ["yolo"]}, "allowed_permission_modes[0]"),
])
def test_a_key_cannot_be_given_limits_beyond_the_fleet(client, limits, field):
    answer = client.post("/api/v1/keys", json={"name": "web", **limits}, headers={"X-API-Key": ADMIN})
    assert refused(answer, 422, field)
    assert client.get("/api/v1/keys", headers={"X-API-Key": ADMIN}).get_json()["keys"] == []


@pytest.mark.parametrize("name", ["config", "anonymous"])
def test_a_managed_key_cannot_pass_for_a_config_key(client, name):
    answer = client.post("/api/v1/keys", json={"name": name}, headers={"X-API-Key": ADMIN})
    assert refused(answer, 422, "name")


def test_a_key_view_shows_its_limits(client):
    make_key(client, "web", allowed_queues=["nightly"], max_token_budget=5)
    [view] = client.get("/api/v1/keys", headers={"X-API-Key": ADMIN}).get_json()["keys"]
    assert (view["allowed_queues"], view["max_token_budget"], view["allowed_roles"]) == (
        ["nightly"], 5, None)


def test_a_schedule_cannot_carry_what_its_key_may_not_submit(client):
    key = make_key(client, "web", allowed_queues=["nightly"], max_token_budget=1000)
    for task, field in (({"queue": "cca"}, "task.queue"), ({"token_budget": 5000}, "task.token_budget")):
        answer = client.post("/api/v1/schedules", headers={"X-API-Key": key}, json={
            "name": "job", "interval_seconds": 60, "task": {"prompt": "p", **task}})
        assert refused(answer, 422 if field == "task.queue" else 403, field)
    assert client.get("/api/v1/schedules", headers={"X-API-Key": ADMIN}).get_json()["schedules"] == []

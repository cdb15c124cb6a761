"""Keys, roles, tenants, quotas, rate limits and hardening of the real API."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sqlalchemy import text

from cca_api import create_app
from cca_core.names import queue_keys
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
ADMIN = "config-admin-key-0123456789"


@pytest.fixture
def app(make_settings):
    return create_app(make_settings(daemon={"require_auth": True, "api_keys": [ADMIN]}))


@pytest.fixture
def client(app):
    return app.test_client()


def as_key(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def make_key(client, name: str, **fields) -> str:
    response = client.post("/api/v1/keys", json={"name": name, **fields}, headers=as_key(ADMIN))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["key"]


def submit(client, key: str, **body):
    return client.post("/api/v1/tasks", json={"prompt": "p", **body}, headers=as_key(key))


def queued(redis_client) -> int:
    return sum(redis_client.llen(key) for key in queue_keys("cca"))


def test_a_key_is_shown_once_and_stored_hashed(client, app):
    key = make_key(client, "alice")
    assert key.startswith("cca_")
    listed = client.get("/api/v1/keys", headers=as_key(ADMIN)).get_json()["keys"]
    assert [row["name"] for row in listed] == ["alice"]
    assert key not in json.dumps(listed)
    with app.extensions["cca"].engine.connect() as connection:
        stored = connection.execute(text("SELECT secret_hash FROM api_keys")).scalar()
    assert key.split("_")[2] not in stored and len(stored) == 64


def test_only_admins_manage_keys(client):
    submitter = make_key(client, "bob")
    assert client.post("/api/v1/keys", json={"name": "x"}, headers=as_key(submitter)).status_code == 403
    assert client.get("/api/v1/keys", headers=as_key(submitter)).status_code == 403
    duplicate = client.post("/api/v1/keys", json={"name": "bob"}, headers=as_key(ADMIN))
    assert duplicate.status_code == 409 and duplicate.get_json()["error"]["field"] == "name"


def test_nothing_but_health_answers_without_a_key(client):
    for path in ("/api/v1/tasks", "/api/v1/status", "/api/v1/workers", "/api/v1/openapi.json",
                 "/api/v1/redis/status", "/api/v1/keys"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/health").status_code in (200, 503)
    assert client.get("/api/v1/tasks", headers=as_key("cca_bad_key")).status_code == 401


def test_readers_read_and_submitters_submit(client):
    reader = make_key(client, "r", role="reader", tenant="team")
    submitter = make_key(client, "s", tenant="team")
    refused = submit(client, reader)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    task = submit(client, submitter).get_json()
    assert client.get(f"/api/v1/tasks/{task['id']}", headers=as_key(reader)).status_code == 200
    assert client.post(f"/api/v1/tasks/{task['id']}/cancel", headers=as_key(reader)).status_code == 403


def test_tenants_see_and_cancel_only_their_own(client):
    alice, bob = make_key(client, "alice"), make_key(client, "bob")
    mate = make_key(client, "alice-ci", tenant="alice")
    task = submit(client, alice).get_json()
    assert (task["id"], client.get(f"/api/v1/tasks/{task['id']}", headers=as_key(bob)).status_code) \
        == (task["id"], 404)
    assert client.post(f"/api/v1/tasks/{task['id']}/cancel", headers=as_key(bob)).status_code == 404
    assert client.get(f"/api/v1/tasks/{task['id']}/events", headers=as_key(bob)).status_code == 404
    assert client.get("/api/v1/tasks", headers=as_key(bob)).get_json()["tasks"] == []
    assert submit(client, bob, parent_id=task["id"]).status_code == 422
    seen_by_mate = client.get("/api/v1/tasks", headers=as_key(mate)).get_json()["tasks"]
    assert [t["id"] for t in seen_by_mate] == [task["id"]]
    assert client.get(f"/api/v1/tasks/{task['id']}", headers=as_key(ADMIN)).status_code == 200
    assert client.post(f"/api/v1/tasks/{task['id']}/cancel", headers=as_key(mate)).status_code == 200


def test_a_revoked_key_is_refused_within_seconds(client):
    key = make_key(client, "temp")
    assert client.get("/api/v1/tasks", headers=as_key(key)).status_code == 200
    assert client.post("/api/v1/keys/temp/revoke", headers=as_key(ADMIN)).status_code == 200
    wait_for(lambda: client.get("/api/v1/tasks", headers=as_key(key)).status_code == 401,
             timeout_s=8, interval_s=0.5, message="the revoked key to be refused")


def test_concurrency_quota_refuses_with_429_and_enqueues_nothing(client, redis_client):
    key = make_key(client, "q", max_concurrent=2)
    assert submit(client, key).status_code == 202
    assert submit(client, key).status_code == 202
    over = submit(client, key)
    assert over.status_code == 429
    error = over.get_json()["error"]
    assert (error["code"], error["limit"]) == ("quota_exceeded", "max_concurrent")
    assert int(over.headers["Retry-After"]) >= 1
    assert queued(redis_client) == 2
    assert len(client.get("/api/v1/tasks", headers=as_key(key)).get_json()["tasks"]) == 2


@pytest.mark.parametrize(("quota", "spent", "limit"), [
    ({"tokens_per_day": 1000}, "input_tokens = 900, output_tokens = 200", "tokens_per_day"),
    ({"usd_per_day": 0.5}, "cost_usd = 0.75", "usd_per_day"),
])
def test_daily_quotas_count_what_agents_spent(client, app, redis_client, quota, spent, limit):
    key = make_key(client, "daily", **quota)
    first = submit(client, key).get_json()
    assert submit(client, key).status_code == 202
    with app.extensions["cca"].engine.begin() as connection:
        connection.execute(text(f"UPDATE tasks SET status = 'succeeded', {spent} WHERE id = :id"),
                           {"id": first["id"]})
    over = submit(client, key)
    assert over.status_code == 429 and over.get_json()["error"]["limit"] == limit
    assert 0 < int(over.headers["Retry-After"]) <= 86401
    assert queued(redis_client) == 2


def test_submitters_may_narrow_but_not_widen(client):
    key = make_key(client, "n")
    assert submit(client, key, allowed_tools=["Read(./**)", "Write(src/**)"]).status_code == 202
    assert submit(client, key, permission_mode="sandbox").status_code == 202
    for wider_rules in (["Bash"], ["Read"]):  # a bare Read reads outside the workspace
        wider = submit(client, key, allowed_tools=wider_rules)
        assert wider.status_code == 403 and wider.get_json()["error"]["field"] == "allowed_tools"
    dangerous = submit(client, key, permission_mode="dangerous")
    assert dangerous.status_code == 422 and dangerous.get_json()["error"]["field"] == "permission_mode"
    assert submit(client, ADMIN, allowed_tools=["Bash"]).status_code == 202


def test_cwd_escapes_are_refused_at_submit(client, tmp_path):
    roots = tmp_path / "roots"
    (roots / "repo").mkdir()
    (tmp_path / "secret").mkdir()
    (roots / "repo/link").symlink_to(tmp_path / "secret")
    for cwd in (roots / "repo/../../secret", roots / "repo/link", tmp_path / "secret"):
        refused = submit(client, ADMIN, cwd=str(cwd))
        assert refused.status_code == 422 and refused.get_json()["error"]["field"] == "cwd", cwd
    assert submit(client, ADMIN, cwd=str(roots / "repo")).status_code == 202


def test_every_answer_carries_security_headers(client):
    for response in (client.get("/health"), client.get("/api/v1/tasks")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_cors_only_for_configured_origins(make_settings):
    app = create_app(make_settings(security={"cors_origins": ["https://ok.example"]}))
    client = app.test_client()
    allowed = client.options("/api/v1/tasks", headers={"Origin": "https://ok.example",
                                                       "Access-Control-Request-Method": "POST"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://ok.example"
    other = client.get("/api/v1/tasks", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_ip_rate_limit_trusts_forwarded_for_only_from_configured_proxies(make_settings):
    app = create_app(make_settings(security={"ip_rate_limit_per_minute": 3, "trust_proxy": True,
                                             "trusted_proxies": ["10.0.0.1"]}))
    client = app.test_client()
    _avoid_minute_boundary()

    def get(peer: str, forwarded: str | None = None) -> int:
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        return client.get("/api/v1/status", headers=headers,
                          environ_base={"REMOTE_ADDR": peer}).status_code

    assert [get("10.0.0.1", "203.0.113.5") for _ in range(4)] == [200, 200, 200, 429]
    assert get("10.0.0.1", "203.0.113.6") == 200  # another client behind the proxy
    # An untrusted peer cannot pick its address with the header: it is limited as itself.
    assert [get("198.51.100.7", f"203.0.113.{i}") for i in range(4)] == [200, 200, 200, 429]


def test_key_rate_limit_is_shared_by_two_api_processes(config_data, tmp_path):
    from tests.conftest import start_api_process

    limited = {**config_data, "daemon": {**config_data["daemon"], "require_auth": True,
                                         "api_keys": [ADMIN]},
               "security": {"rate_limit_per_minute": 10}}
    urls = [start_api_process(tmp_path, limited, name) for name in ("api-a", "api-b")]
    _avoid_minute_boundary()
    codes = [httpx.get(f"{urls[i % 2]}/api/v1/status", headers=as_key(ADMIN), timeout=5).status_code
             for i in range(14)]
    assert codes.count(200) == 10 and codes[10:] == [429] * 4


def _avoid_minute_boundary() -> None:
    """Counters reset each minute; do not start a counted burst in its last seconds."""
    if time.time() % 60 > 52:
        time.sleep(61 - time.time() % 60)


def test_a_task_token_may_only_add_children_of_its_running_task(make_settings):
    from cca_core.access.task_tokens import mint
    from cca_core.infra.db import transaction
    from cca_core.tasks import store

    app = create_app(make_settings(daemon={"require_auth": True, "api_keys": [ADMIN],
                                           "task_token_secret": "t0ken-s3cret"}))
    client = app.test_client()
    key = make_key(client, "team-key", tenant="team")
    parent = submit(client, key).get_json()
    other = submit(client, key).get_json()
    token = mint("t0ken-s3cret", parent["id"])
    assert client.get("/api/v1/tasks", headers=as_key(token)).status_code == 401  # not running
    with transaction(app.extensions["cca"].sessions) as session:
        store.claim_task(session.connection(), parent["id"], worker="w", pid=1, lease_s=60, max_attempts=3)
    child = submit(client, token, parent_id=parent["id"])
    assert child.status_code == 202, child.get_json()
    assert (child.get_json()["parent_id"], child.get_json()["depth"]) == (parent["id"], 1)
    assert submit(client, token).status_code == 403
    assert submit(client, token, parent_id=other["id"]).status_code == 403
    assert client.get(f"/api/v1/tasks/{child.get_json()['id']}", headers=as_key(token)).status_code == 200
    assert client.get("/api/v1/keys", headers=as_key(token)).status_code == 403
    forged = mint("wrong-secret", parent["id"])
    assert client.get("/api/v1/tasks", headers=as_key(forged)).status_code == 401

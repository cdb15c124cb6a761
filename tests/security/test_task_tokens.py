"""A fleet agent's bridge holds a task token: it may submit children of its own task, read and
cancel its own subtree, and nothing else; its children get at most its task's permissions and
spend the quotas of the key that created the tree's root. Real app, Postgres and Redis."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from cca_api import create_app
from cca_core.access.task_tokens import mint

pytestmark = [pytest.mark.integration, pytest.mark.attack]
ADMIN = {"X-API-Key": "task-token-admin-key-0123456789"}
SECRET = "task-token-secret-for-these-tests"


@pytest.fixture
def app(make_settings):
    return create_app(make_settings(
        daemon={"require_auth": True, "api_keys": [ADMIN["X-API-Key"]], "task_token_secret": SECRET},
        security={"rate_limit_per_minute": 0, "ip_rate_limit_per_minute": 0}))


@pytest.fixture
def client(app):
    return app.test_client()


def submit(client, headers, **body):
    return client.post("/api/v1/tasks", json={"prompt": "p", **body}, headers=headers)


def running(app, task_id: str) -> dict[str, str]:
    """Mark the task running (as a worker's claim would) and return its bridge's headers."""
    with app.extensions["cca"].engine.begin() as connection:
        connection.execute(text("UPDATE tasks SET status = 'running' WHERE id = :id"), {"id": task_id})
    return {"X-API-Key": mint(SECRET, task_id)}


@pytest.fixture
def tree(app, client):
    """Root A (running, with its token) and its child A1; root B of the same tenant."""
    a = submit(client, ADMIN, allowed_tools=["Read(./**)", "Bash(git *)"],
               denied_tools=["Bash(git push *)"]).get_json()["id"]
    token = running(app, a)
    a1 = submit(client, token, parent_id=a).get_json()["id"]
    b = submit(client, ADMIN).get_json()["id"]
    return {"a": a, "a1": a1, "b": b, "token": token}


def test_a_token_reads_its_subtree_and_nothing_else(client, tree):
    token = tree["token"]
    assert client.get(f"/api/v1/tasks/{tree['a']}", headers=token).status_code == 200
    assert client.get(f"/api/v1/tasks/{tree['a1']}", headers=token).status_code == 200
    assert client.get(f"/api/v1/tasks/{tree['b']}", headers=token).status_code == 404
    assert client.get(f"/api/v1/tasks/{tree['b']}/events", headers=token).status_code == 404


def test_a_token_lists_only_children_in_its_subtree(client, tree):
    token = tree["token"]
    listed = client.get("/api/v1/tasks", headers=token).get_json()["tasks"]
    assert [task["id"] for task in listed] == [tree["a1"]]
    assert client.get("/api/v1/tasks", query_string={"parent_id": tree["b"]},
                      headers=token).status_code == 404


def test_a_token_cannot_cancel_outside_its_subtree(client, tree):
    assert client.post(f"/api/v1/tasks/{tree['b']}/cancel", headers=tree["token"]).status_code == 404
    assert client.get(f"/api/v1/tasks/{tree['b']}", headers=ADMIN).get_json()["status"] == "queued"
    assert client.post(f"/api/v1/tasks/{tree['a1']}/cancel", headers=tree["token"]).status_code == 200


def test_a_token_cannot_submit_under_another_task(client, tree):
    refused = submit(client, tree["token"], parent_id=tree["b"])
    assert refused.status_code == 403 and refused.get_json()["error"]["field"] == "parent_id"


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/api/v1/schedules"), ("post", "/api/v1/schedules"), ("get", "/api/v1/keys"),
    ("post", "/api/v1/keys")])
def test_a_token_touches_no_schedule_and_no_key(client, tree, method, path):
    answer = getattr(client, method)(path, headers=tree["token"], json={})
    assert answer.status_code == 403


def test_a_child_gets_at_most_its_parents_permissions(client, tree):
    token, a = tree["token"], tree["a"]
    for wider in ({"allowed_tools": ["Bash"]}, {"allowed_tools": ["Read"]},
                  {"permission_mode": "dangerous"}):
        refused = submit(client, token, parent_id=a, **wider)
        assert refused.status_code in (403, 422), refused.get_json()
        assert refused.get_json()["error"]["field"] in wider
    child = client.get(f"/api/v1/tasks/{tree['a1']}", headers=ADMIN).get_json()
    assert child["allowed_tools"] == ["Read(./**)", "Bash(git *)"]  # inherited, not the role's
    assert "Bash(git push *)" in child["denied_tools"]  # the parent's denials hold
    narrower = submit(client, token, parent_id=a, allowed_tools=["Read(./**)"]).get_json()
    assert narrower["allowed_tools"] == ["Read(./**)"]


def test_a_trees_children_spend_the_root_keys_quota(app, client):
    key = client.post("/api/v1/keys", headers=ADMIN, json={
        "name": "ci", "role": "submitter", "max_concurrent": 2}).get_json()["key"]
    root = submit(client, {"X-API-Key": key}).get_json()["id"]
    token = running(app, root)
    assert submit(client, token, parent_id=root).status_code == 202  # 2 of 2 now active
    over = submit(client, token, parent_id=root)
    assert over.status_code == 429 and over.get_json()["error"]["limit"] == "max_concurrent"


def test_a_revoked_root_key_stops_its_trees_tokens(app, client):
    key = client.post("/api/v1/keys", headers=ADMIN, json={
        "name": "gone", "role": "submitter"}).get_json()["key"]
    root = submit(client, {"X-API-Key": key}).get_json()["id"]
    token = running(app, root)
    assert client.post("/api/v1/keys/gone/revoke", headers=ADMIN).status_code == 200
    assert submit(client, token, parent_id=root).status_code == 401

"""POST /api/v1/tasks/{id}/continue on the real Flask app, Postgres and Redis: what may be
continued, what a follow-up inherits, and how it is sent."""

from __future__ import annotations

import gzip

import pytest
from sqlalchemy import text

from cca_api import create_app
from cca_core.sessions import store as sessions
from cca_core.sessions.store import Checkpoint
from tests.integration.test_api import queued_messages

pytestmark = pytest.mark.integration


@pytest.fixture
def client(make_settings):
    return create_app(make_settings()).test_client()


def ended(client, engine, status="succeeded", with_session=True, **body) -> dict:
    task = client.post("/api/v1/tasks", json={"prompt": "write the parser", **body}).get_json()
    with engine.begin() as connection:
        connection.execute(text("UPDATE tasks SET status = :status, finished_at = now() WHERE id = :id"),
                           {"status": status, "id": task["id"]})
        if with_session:
            sessions.save(connection, task["id"], Checkpoint("5e55", 1, gzip.compress(b"{}\n"), None, None))
    return task


def test_a_follow_up_inherits_its_settings_and_is_sent(client, engine, redis_client):
    source = ended(client, engine, role="qa", model="claude-sonnet-5", priority="high",
                   allowed_tools=["Bash(git *)"], max_turns=7,
                   retries={"overloaded": {"attempts": 2}})
    redis_client.flushdb()
    response = client.post(f"/api/v1/tasks/{source['id']}/continue",
                           json={"prompt": "also add tests", "max_turns": 3, "metadata": {"pr": 9}})
    assert response.status_code == 202, response.get_json()
    follow_up = response.get_json()
    assert follow_up["continues"] == source["id"] and follow_up["prompt"] == "also add tests"
    assert (follow_up["role"], follow_up["model"], follow_up["priority"]) == ("qa", "claude-sonnet-5", "high")
    assert follow_up["allowed_tools"] == ["Bash(git *)"]
    assert (follow_up["max_turns"], follow_up["metadata"]) == (3, {"pr": 9})
    assert follow_up["token_budget"] == source["token_budget"]
    sent = [m["headers"]["argsrepr"].split(" ")[0] for m in queued_messages(redis_client)]
    assert sent == [follow_up["id"]]
    assert client.get(f"/api/v1/tasks/{source['id']}").get_json()["status"] == "succeeded"


def test_a_follow_up_of_a_repository_task_starts_from_its_branch(client, engine, config_data):
    repo = f"{config_data['agents']['allowed_roots'][0]}/app"
    source = ended(client, engine, repo=repo, base="main", push=True)
    follow_up = client.post(f"/api/v1/tasks/{source['id']}/continue", json={"prompt": "and the docs"})
    assert follow_up.status_code == 202, follow_up.get_json()
    task = follow_up.get_json()
    assert (task["repo"], task["base"], task["push"]) == (repo, f"cca/{source['id']}", True)
    assert task["branch"] == f"cca/{task['id']}"


def test_only_an_ended_task_with_a_stored_session_can_be_continued(client, engine):
    queued = client.post("/api/v1/tasks", json={"prompt": "p"}).get_json()
    not_yet = client.post(f"/api/v1/tasks/{queued['id']}/continue", json={"prompt": "more"})
    assert not_yet.status_code == 409 and not_yet.get_json()["error"]["code"] == "not_finished"
    never_ran = ended(client, engine, status="cancelled", with_session=False)
    none = client.post(f"/api/v1/tasks/{never_ran['id']}/continue", json={"prompt": "more"})
    assert none.status_code == 409 and none.get_json()["error"]["code"] == "no_session"
    failed = ended(client, engine, status="failed")
    again = client.post(f"/api/v1/tasks/{failed['id']}/continue", json={"prompt": "try again"})
    assert again.status_code == 202


def test_a_bad_follow_up_is_refused_naming_the_field(client, engine):
    source = ended(client, engine)
    for body, field in (({}, "prompt"), ({"prompt": "x", "role": "qa"}, "role"),
                        ({"prompt": "x", "token_budget": 0}, "token_budget")):
        response = client.post(f"/api/v1/tasks/{source['id']}/continue", json=body)
        assert response.status_code == 422 and response.get_json()["error"]["field"] == field, body
    bad_id = client.post("/api/v1/tasks/not-a-uuid/continue", json={"prompt": "x"})
    assert bad_id.status_code == 404 and bad_id.get_json()["error"]["code"] == "not_found"

"""A schedule acts for one key (docs/security.md, item 6): an edit or a resume re-checks the
editor's permissions, limits and quotas and makes it that key; a revoked key's schedules stop
firing, under the real `cca beat`, with the reason on the schedule and in `cca schedules`. A
fleet agent's children stay within the limits of the key that created its task."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from cca_api import create_app
from cca_core.access.task_tokens import mint
from cca_core.infra.db import make_engine, make_session_factory, transaction
from cca_core.tasks import store
from tests.conftest import start_api_process
from tests.integration.test_beat import start_beat  # noqa: F401 (the real `cca beat` fixture)
from tests.support.schedules import backdate, get, runs
from tests.support.waiting import wait_for

pytestmark = pytest.mark.attack
ADMIN = "config-admin-key-0123456789"
SECRET = "t0ken-s3cret"


@pytest.fixture
def app(make_settings):
    return create_app(make_settings(daemon={"require_auth": True, "api_keys": [ADMIN],
                                            "task_token_secret": SECRET},
                                    agents={"queues": ["cca", "nightly"]}))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def sessions(database_url):
    engine = make_engine(database_url, pool_size=2)
    yield make_session_factory(engine)
    engine.dispose()


def as_key(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def make_key(client, name: str, **fields) -> str:
    response = client.post("/api/v1/keys", json={"name": name, "tenant": "web", **fields},
                           headers=as_key(ADMIN))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["key"]


def make_schedule(client, key: str, **task) -> dict:
    response = client.post("/api/v1/schedules", headers=as_key(key), json={
        "name": "nightly", "interval_seconds": 60, "task": {"prompt": "p", **task}})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_an_edit_cannot_borrow_the_creators_limits(client):
    lead = make_key(client, "lead")
    intern = make_key(client, "intern", allowed_queues=["cca"], max_token_budget=1000)
    schedule = make_schedule(client, lead, queue="nightly")
    url = f"/api/v1/schedules/{schedule['id']}"
    renamed = client.patch(url, headers=as_key(intern), json={"name": "mine"})
    assert renamed.status_code == 422 and renamed.get_json()["error"]["field"] == "task.queue"
    paused = client.patch(url, headers=as_key(intern), json={"enabled": False})
    assert paused.status_code == 200 and paused.get_json()["created_by"] == "lead"  # a pause takes nothing
    resumed = client.post(f"{url}/resume", headers=as_key(intern))
    assert resumed.status_code == 422 and resumed.get_json()["error"]["field"] == "task.queue"
    unchanged = client.get(url, headers=as_key(lead)).get_json()
    assert (unchanged["name"], unchanged["created_by"], unchanged["enabled"]) == ("nightly", "lead",
                                                                                 False)


def test_an_edit_cannot_borrow_the_creators_role_permissions(client):
    web_admin = make_key(client, "web-admin", role="admin")
    submitter = make_key(client, "sam")
    schedule = make_schedule(client, web_admin, allowed_tools=["Bash(*)"])
    answer = client.patch(f"/api/v1/schedules/{schedule['id']}", headers=as_key(submitter),
                          json={"expires_seconds": 60})
    assert answer.status_code == 403 and answer.get_json()["error"]["field"] == "task.allowed_tools"


def test_an_edit_cannot_borrow_the_creators_quotas(client):
    lead = make_key(client, "lead")
    spent = make_key(client, "spent", max_concurrent=0)
    schedule = make_schedule(client, lead)
    answer = client.patch(f"/api/v1/schedules/{schedule['id']}", headers=as_key(spent),
                          json={"task": {"prompt": "now mine"}})
    assert answer.status_code == 429 and answer.get_json()["error"]["limit"] == "max_concurrent"
    assert client.get(f"/api/v1/schedules/{schedule['id']}",
                      headers=as_key(lead)).get_json()["task"]["prompt"] == "p"


def test_an_editor_within_its_limits_becomes_the_key_the_schedule_acts_for(client):
    lead = make_key(client, "lead")
    intern = make_key(client, "intern", allowed_queues=["cca"])
    schedule = make_schedule(client, lead)
    edited = client.patch(f"/api/v1/schedules/{schedule['id']}", headers=as_key(intern),
                          json={"task": {"prompt": "triage"}})
    assert edited.status_code == 200 and edited.get_json()["created_by"] == "intern"


def test_a_fleet_agents_children_stay_within_its_keys_limits(client, app):
    key = make_key(client, "web", allowed_queues=["cca"], max_token_budget=1000)
    parent = client.post("/api/v1/tasks", headers=as_key(key), json={"prompt": "p"}).get_json()
    with transaction(app.extensions["cca"].sessions) as session:
        store.claim_task(session.connection(), parent["id"], worker="w", pid=1, lease_s=60,
                         max_attempts=3)
    token = as_key(mint(SECRET, parent["id"]))
    for body, field in (({"queue": "nightly"}, "queue"), ({"token_budget": 5000}, "token_budget")):
        child = client.post("/api/v1/tasks", headers=token,
                            json={"prompt": "c", "parent_id": parent["id"], **body})
        assert child.status_code in (403, 422) and child.get_json()["error"]["field"] == field
    child = client.post("/api/v1/tasks", headers=token, json={"prompt": "c", "parent_id": parent["id"]})
    assert child.get_json()["token_budget"] == 1000


def test_a_revoked_keys_schedule_stops_firing_and_says_why(tmp_path, config_data, sessions,
                                                           start_beat, fleet_env):  # noqa: F811
    url = start_api_process(tmp_path, {**config_data, "daemon": {
        **config_data["daemon"], "require_auth": True, "api_keys": [ADMIN]}})
    api = httpx.Client(base_url=url, headers=as_key(ADMIN), timeout=10)
    keys = {name: api.post("/api/v1/keys", json={"name": name}).json()["key"]
            for name in ("ops", "dev")}
    schedules = {name: httpx.post(f"{url}/api/v1/schedules", headers=as_key(key), timeout=10, json={
        "name": f"{name}-job", "interval_seconds": 60, "task": {"prompt": "p"}}).json()["id"]
        for name, key in keys.items()}
    assert api.post("/api/v1/keys/ops/revoke").status_code == 200
    for schedule_id in schedules.values():
        backdate(sessions, schedule_id, 61)

    start_beat("b1")
    wait_for(lambda: (len(runs(sessions, schedules["dev"])) == 1
                      and not get(sessions, schedules["ops"]).enabled),
             timeout_s=30, message="the beat to fire dev's schedule and stop ops's")
    assert runs(sessions, schedules["ops"]) == []
    shown = api.get(f"/api/v1/schedules/{schedules['ops']}").json()
    assert shown["next_fire_at"] is None
    assert shown["last_skip_reason"].startswith("stopped: the key ops it acts for was revoked at")
    run_now = api.post(f"/api/v1/schedules/{schedules['ops']}/run")
    assert run_now.status_code == 403 and "revoked" in run_now.json()["error"]["message"]
    listed = subprocess.run([sys.executable, "-m", "cca_cli.main", "--api-url", url, "--api-key", ADMIN,
                             "schedules", "show", "ops-job"], env=fleet_env, text=True,
                            capture_output=True, timeout=60)
    assert listed.returncode == 0 and "the key ops it acts for was revoked" in " ".join(
        listed.stdout.split()), listed.stderr

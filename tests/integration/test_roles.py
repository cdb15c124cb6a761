"""Roles: the seed's seven ship with cca, config adds or overrides them, the API, the CLI and the
MCP bridge list them, and a task naming a role that does not exist is refused."""

from __future__ import annotations

import json

import httpx
import pytest

from cca_api import create_app
from cca_core.infra.api_client import CcaClient
from cca_mcp.server import make_server
from tests.integration.test_mcp import call
from tests.support.cli import cca

pytestmark = pytest.mark.integration
SHIPPED = {"coordinator", "backend", "frontend", "dba", "devops", "security", "qa"}


@pytest.fixture
def client(make_settings):
    app = create_app(make_settings(agents={"confinement": "none", "roles": {
        "qa": {"model": "claude-haiku", "token_budget": 4000},
        "reviewer": {"description": "Our own", "append_system_prompt": "Review only."}}}))
    return app.test_client()


def test_the_shipped_roles_are_listed_with_what_they_run_with(client):
    roles = {role["name"]: role for role in client.get("/api/v1/roles").get_json()["roles"]}
    assert set(roles) == SHIPPED | {"reviewer"}
    coordinator = roles["coordinator"]
    assert coordinator["allowed_tools"] == ["Read(./**)", "Glob(./**)", "Grep(./**)"]
    assert coordinator["token_budget"] == 60000 and coordinator["description"]
    assert (roles["qa"]["model"], roles["qa"]["token_budget"]) == ("claude-haiku", 4000)  # override
    assert all(role["prompt"] is None for role in roles.values())  # prompts: one role at a time
    assert client.get("/api/v1/roles/reviewer").get_json()["prompt"] == "Review only."


def test_a_role_shows_its_prompt_file_and_an_unknown_one_is_404(client):
    coordinator = client.get("/api/v1/roles/coordinator").get_json()
    assert '"action": "delegate"' in coordinator["prompt"] and "backend" in coordinator["prompt"]
    missing = client.get("/api/v1/roles/nobody")
    assert missing.status_code == 404 and "coordinator" in missing.get_json()["error"]["message"]


def test_a_task_naming_a_role_that_does_not_exist_is_refused_listing_the_roles(client):
    answer = client.post("/api/v1/tasks", json={"prompt": "p", "role": "fixer"})
    error = answer.get_json()["error"]
    assert answer.status_code == 422 and error["field"] == "role"
    assert "fixer" in error["message"] and all(name in error["message"] for name in SHIPPED)
    schedule = client.post("/api/v1/schedules", json={
        "name": "nightly", "interval_seconds": 3600, "task": {"prompt": "p", "role": "fixer"}})
    assert schedule.status_code == 422 and schedule.get_json()["error"]["field"] == "task.role"
    assert client.post("/api/v1/tasks", json={"prompt": "p", "role": "dba"}).status_code == 202


def test_the_bridge_lists_roles_and_shows_one(make_settings):
    app = create_app(make_settings(agents={"confinement": "none"}))
    api = CcaClient("http://cca.test", transport=httpx.WSGITransport(app=app))
    listed = call(make_server(api, parent_id=""), "cca_roles").structured_content["roles"]
    assert {role["name"] for role in listed} == SHIPPED and all(r["prompt"] is None for r in listed)
    one = call(make_server(api, parent_id=""), "cca_roles", {"name": "security"})
    assert one.structured_content["roles"][0]["prompt"].startswith("# Security specialist")


def test_cca_roles_list_and_show(fleet_env, api_url):
    env = {**fleet_env, "CCA_API_URL": api_url}
    listed = cca("roles", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert {role["name"] for role in json.loads(listed.stdout)["roles"]} == SHIPPED
    shown = cca("roles", "show", "dba", env=env)
    assert shown.returncode == 0 and "# Database specialist" in shown.stdout
    missing = cca("roles", "show", "nobody", env=env)
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr

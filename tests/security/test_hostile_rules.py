"""Nothing a caller sends can become an option of `claude`: hostile tool rules and model names
are refused at the API (422 naming the field and index) in tasks, schedule templates and
schedule edits, and refused in the configuration with the key named."""

from __future__ import annotations

import pytest

from cca_api import create_app
from cca_core.errors import ConfigError
from cca_core.infra.config import validate

pytestmark = [pytest.mark.integration, pytest.mark.attack]
ADMIN = {"X-API-Key": "hostile-rules-admin-key-0123456789"}
HOSTILE_RULES = {
    "an option": "--dangerously-skip-permissions",
    "an option after a rule": "Bash(git *) --permission-mode bypassPermissions",
    "a second group": "Bash(x) --allowedTools (Bash)",
    "a newline": "Bash(git *)\n--permission-mode=bypassPermissions",
    "a NUL-free control character": "Read\t--verbose",
    "a leading dash": "-Read",
    "a 10 kB rule": "Bash(" + "x" * 10_000 + ")",
    "unbalanced parentheses": "Bash(git *))",
}
HOSTILE_MODELS = ["--dangerously-skip-permissions", "sonnet --verbose", "sonnet\n", "x" * 201]


@pytest.fixture
def client(make_settings):
    settings = make_settings(daemon={"require_auth": True, "api_keys": [ADMIN["X-API-Key"]]},
                             security={"rate_limit_per_minute": 0, "ip_rate_limit_per_minute": 0})
    return create_app(settings).test_client()


def refused(response, field: str) -> None:
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["field"] == field


@pytest.mark.parametrize("rule", HOSTILE_RULES.values(), ids=HOSTILE_RULES.keys())
@pytest.mark.parametrize("where", ["allowed_tools", "denied_tools"])
def test_a_task_with_a_hostile_rule_is_refused_naming_its_index(client, rule, where):
    answer = client.post("/api/v1/tasks", headers=ADMIN,
                         json={"prompt": "p", where: ["Read", "Grep(./**)", rule]})
    refused(answer, f"{where}[2]")
    assert client.get("/api/v1/tasks", headers=ADMIN).get_json()["tasks"] == []


@pytest.mark.parametrize("rule", HOSTILE_RULES.values(), ids=HOSTILE_RULES.keys())
def test_a_schedule_template_or_edit_with_a_hostile_rule_is_refused(client, rule):
    created = client.post("/api/v1/schedules", headers=ADMIN, json={
        "name": "nightly", "interval_seconds": 3600,
        "task": {"prompt": "p", "allowed_tools": ["Read", rule]}})
    refused(created, "task.allowed_tools[1]")
    good = client.post("/api/v1/schedules", headers=ADMIN, json={
        "name": "nightly", "interval_seconds": 3600, "task": {"prompt": "p"}}).get_json()
    edited = client.patch(f"/api/v1/schedules/{good['id']}", headers=ADMIN,
                          json={"task": {"denied_tools": [rule]}})
    refused(edited, "task.denied_tools[0]")
    assert client.get(f"/api/v1/schedules/{good['id']}", headers=ADMIN).get_json()["task"] == good["task"]


@pytest.mark.parametrize("model", HOSTILE_MODELS)
def test_a_hostile_model_name_is_refused(client, model):
    refused(client.post("/api/v1/tasks", headers=ADMIN, json={"prompt": "p", "model": model}),
            "model")


@pytest.mark.parametrize("rule", HOSTILE_RULES.values(), ids=HOSTILE_RULES.keys())
def test_a_hostile_rule_in_the_config_is_refused_naming_the_key(rule):
    with pytest.raises(ConfigError) as error:
        validate({"agents": {"roles": {"dba": {"permissions": {
            "allowed_tools": ["Read", rule]}}}}})
    assert error.value.field == "agents.roles.dba.permissions.allowed_tools[1]"

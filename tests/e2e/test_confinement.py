"""Agents cannot reach what they must not: the real CLI under cca's permission flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cca_api import create_app
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e
SECRETS = {"api_key": "fleet-api-key-that-agents-must-not-see",
           "model_key": "test-model-key"}


def script(*steps: dict) -> str:
    return f"[[script:{json.dumps({'steps': list(steps)})}]]"


def bash(command: str) -> dict:
    return {"tool_use": {"name": "Bash", "input": {"command": command}}}


@pytest.fixture
def fleet(make_settings, start_worker):
    sections = {"daemon": {"api_keys": [SECRETS["api_key"]], "max_agents": 2},
                "agents": {"permissions": {"allowed_tools": [
                    "Read", "Write(src/**)", "Bash(git *)", "Bash(env)", "Bash(rm -rf *)"]}}}
    start_worker("w1", **sections)
    return create_app(make_settings(**sections)).test_client()


def run(client, prompt: str, **body) -> dict:
    task = client.post("/api/v1/tasks", json={"prompt": prompt, **body},
                       headers={"X-API-Key": SECRETS["api_key"]}).get_json()

    def done():
        current = client.get(f"/api/v1/tasks/{task['id']}",
                             headers={"X-API-Key": SECRETS["api_key"]}).get_json()
        return current if current["status"] not in ("queued", "running") else None

    return wait_for(done, timeout_s=60, message="the agent to finish")


def workspace(config_data, task: dict) -> Path:
    return Path(config_data["embedded"]["data_dir"]) / "workspaces" / task["id"]


def denied_tools(task: dict) -> list[str]:
    return [denial.get("tool_name") for denial in task["permission_denials"]]


def test_allowed_git_runs(fleet):
    task = run(fleet, script(bash("git init -q && git status --short && echo git-ok"),
                             {"text": "{tool_result}"}))
    assert task["status"] == "succeeded" and "git-ok" in task["result"]
    assert task["permission_denials"] == []


def test_rm_rf_is_denied_even_when_allowed_by_a_rule_and_recorded(fleet, config_data):
    victim = Path(config_data["agents"]["allowed_roots"][0]) / "victim"
    victim.mkdir()
    task = run(fleet, script(bash(f"rm -rf {victim}"), {"text": "tried"}))
    assert task["status"] == "succeeded"
    assert victim.is_dir()
    assert denied_tools(task) == ["Bash"]


def test_writes_outside_the_allowed_globs_are_denied(fleet, config_data):
    task = run(fleet, script(
        {"tool_use": {"name": "Write", "input": {"file_path": "src/ok.txt", "content": "fine"}}},
        {"tool_use": {"name": "Write", "input": {"file_path": "outside.txt", "content": "no"}}},
        {"text": "wrote"}))
    where = workspace(config_data, task)
    assert (where / "src/ok.txt").read_text() == "fine"  # Write(src/**) became Edit(src/**)
    assert not (where / "outside.txt").exists()
    assert denied_tools(task) == ["Write"]


def test_reading_env_files_is_denied_and_recorded(fleet, config_data):
    repo = Path(config_data["agents"]["allowed_roots"][0]) / "repo"
    repo.mkdir()
    (repo / ".env").write_text("DATABASE_PASSWORD=hunter2\n")
    task = run(fleet, script(
        {"tool_use": {"name": "Read", "input": {"file_path": str(repo / ".env")}}},
        {"text": "read: {tool_result}"}), cwd=str(repo))
    assert "hunter2" not in (task["result"] or "")
    assert denied_tools(task) == ["Read"]


def test_an_agent_running_env_sees_no_secret_of_cca(fleet, config_data):
    task = run(fleet, script(bash("env"), {"text": "{tool_result}"}))
    seen = task["result"]
    assert "CLAUDE_CONFIG_DIR=" in seen and "PATH=" in seen
    for secret in (SECRETS["api_key"], config_data["postgres"]["url"].split("?")[0],
                   config_data["redis"]["url"], "CCA_CONFIG", "CCA__"):
        assert secret not in seen, secret

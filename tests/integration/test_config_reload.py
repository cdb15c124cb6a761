"""Configuration reloaded without a restart, in a real `cca api` (gunicorn) process and a real
worker: the reloadable keys apply to the next submission and run, the others are named."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from cca_api import create_app
from cca_core.infra.reload import apply, diff
from cca_core.settings import Settings
from tests.conftest import start_api_process
from tests.support import toml
from tests.support.fleet import FleetAPI, bash
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_the_reloadable_keys_apply_and_the_others_are_named():
    old = Settings()
    new = Settings.model_validate({"agents": {"roles": {"qa": {"token_budget": 777}}, "claude_path": "/x"},
                                   "security": {"rate_limit_per_minute": 5},
                                   "credentials": {"a": {"api_key": "k"}}})
    changes = diff(old, new)
    assert changes.reloaded == ["agents.roles", "credentials.a", "security.rate_limit_per_minute"]
    assert changes.needs_restart == ["agents.claude_path"]
    applied = apply(old, new, changes.reloaded)
    assert applied.agents.role("qa").token_budget == 777 and applied.agents.claude_path == "claude"
    assert applied.credentials["a"].api_key == "k" and applied.security.rate_limit_per_minute == 5


def submit(url: str, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{url}/api/v1/tasks", json={"prompt": "p", **body}, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()


def test_a_reload_reaches_every_api_process_and_worker_without_a_restart(
        tmp_path, config_data, start_worker, model_api):
    config_data["agents"]["permissions"] = {"allowed_tools": ["Read(./**)", "Bash(printenv *)"]}
    url = start_api_process(tmp_path, config_data)
    worker = start_worker("w1")
    assert submit(url, role="qa")["token_budget"] != 12345

    def edit(budget: int, **more: Any) -> None:
        for name in ("api", "w1"):
            data = json.loads(json.dumps(config_data))
            data["agents"]["roles"] = {"qa": {"token_budget": budget}}
            data["agents"]["env"] = {**data["agents"]["env"], "RELOADED": f"budget-{budget}"}
            data["redis"] = {**data["redis"], **more}
            toml.write(tmp_path / f"{name}.toml", data)

    edit(12345, pool_size=7)
    answer = httpx.post(f"{url}/api/v1/admin/config/reload?wait_seconds=15", timeout=30).json()
    reports = {report["process"].split("@")[0]: report for report in answer["processes"]}
    assert answer["not_reported"] == [] and set(reports) == {"api", "w1"}, answer
    for report in reports.values():
        assert report["reloaded"] == ["agents.env", "agents.roles"] and report["error"] is None
        assert report["needs_restart"] == ["redis.pool_size"]  # named, not applied
    assert submit(url, role="qa")["token_budget"] == 12345  # the next submission has it
    task = submit(url, role="qa", allowed_tools=["Bash(printenv *)"],
                  prompt="[[script:" + json.dumps({"steps": [bash("printenv RELOADED"),
                                                              {"text": "{tool_result}"}]}) + "]]")
    done = wait_for(lambda: (found := httpx.get(f"{url}/api/v1/tasks/{task['id']}", timeout=10).json())
                    ["status"] in ("succeeded", "failed") and found, timeout_s=60, message="the run")
    assert done["result"].strip() == "budget-12345"  # the worker's next run has it

    edit(23456)  # SIGHUP to a worker asks the whole fleet to reload
    os.kill(worker.process.pid, signal.SIGHUP)
    wait_for(lambda: submit(url, role="qa")["token_budget"] == 23456, timeout_s=15,
             message="the API process to reload after the worker's SIGHUP")
    assert worker.process.poll() is None  # the worker was not restarted
    broken = Path(tmp_path / "api.toml")
    broken.write_text(broken.read_text() + "\n[agents]\nmax_depth = 'deep'\n")
    kept = httpx.post(f"{url}/api/v1/admin/config/reload?wait_seconds=5", timeout=30).json()
    api = next(report for report in kept["processes"] if report["process"].startswith("api@"))
    assert api["error"] and submit(url, role="qa")["token_budget"] == 23456  # the old one stays


def test_reloaded_credentials_reach_the_next_run_through_a_new_proxy(
        tmp_path, config_data, make_settings, start_worker, model_api):
    def lend(key: str) -> dict[str, Any]:
        return {"credentials": {key: {"api_key": f"key-{key}", "base_url": model_api.url}}}

    start_worker("w1", **lend("a"))
    api = FleetAPI(create_app(make_settings()).test_client())

    def run(marker: str) -> set[str]:
        task = api.submit({"text": "ok"}, prompt_prefix=f"{marker} ")
        assert api.wait_terminal(task["id"], timeout_s=60)["status"] == "succeeded"
        return {record["key"] for record in model_api.records
                if marker in json.dumps(record["body"]["messages"][0])}

    assert run("first-run") == {"key-a"}
    toml.write(tmp_path / "w1.toml", {**config_data, **lend("b")})
    answer = api.client.post("/api/v1/admin/config/reload?wait_seconds=10").get_json()
    [worker] = [report for report in answer["processes"] if report["process"] == "w1@test"]
    assert worker["reloaded"] == ["credentials.a", "credentials.b"], answer
    assert run("second-run") == {"key-b"}  # the pool process lent the new credential

"""The bridge's task token never reaches a command line (every local user can read
``/proc/<pid>/cmdline``): the worker writes the MCP config to a 0600 file in the slot's
directory and passes ``--mcp-config=<path>``."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from cca_core.access.task_tokens import mint
from tests.conftest import start_api_process
from tests.support.fleet import Sampler, bash, live_processes, script
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.attack]
ADMIN = "bridge-argv-admin-key-0123456789"
SECRET = "bridge-argv-token-secret-0123456789"


def test_no_command_line_holds_the_task_token_while_the_bridge_runs(config_data, tmp_path,
                                                                    start_worker):
    secured = {**config_data, "daemon": {**config_data["daemon"], "require_auth": True,
                                         "api_keys": [ADMIN], "task_token_secret": SECRET}}
    api_url = start_api_process(tmp_path, secured)
    start_worker("w1", daemon=secured["daemon"], agents={"bridge_url": api_url})
    headers = {"X-API-Key": ADMIN}
    task = httpx.post(f"{api_url}/api/v1/tasks", headers=headers, timeout=5, json={
        "prompt": script(bash("sleep 4"), {"text": "slept"}),
        "allowed_tools": ["Bash(sleep *)"]}).json()
    token = mint(SECRET, task["id"])

    def bridges() -> list[str]:
        return [proc.cmdline for proc in live_processes() if "cca_mcp" in proc.cmdline]

    with Sampler(lambda: [proc.cmdline for proc in live_processes()]) as sampler:
        wait_for(bridges, timeout_s=60, message="the agent's bridge to start")

        def done() -> dict | None:
            current = httpx.get(f"{api_url}/api/v1/tasks/{task['id']}", headers=headers,
                                timeout=5).json()
            return current if current["status"] not in ("queued", "running") else None

        finished = wait_for(done, timeout_s=90, message="the task to finish")
    assert finished["status"] == "succeeded", finished
    seen = [cmdline for _, cmdlines in sampler.samples for cmdline in cmdlines]
    assert any("--mcp-config=" in cmdline for cmdline in seen)  # the agent was sampled
    assert not [cmdline for cmdline in seen if token in cmdline]
    [config] = (Path(config_data["embedded"]["data_dir"]) / "slots").glob("*/mcp.json")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and token in config.read_text()

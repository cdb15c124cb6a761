"""The MCP bridge end to end: a real `claude` calls cca_task and cca_wait through cca-mcp, the
fleet runs the inner task with another real `claude`, and the outer run reports its result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cca_core.access.task_tokens import mint
from tests.conftest import start_api_process
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e
INNER_RESULT = "inner-result-7f3a"
ADMIN = "bridge-admin-key-0123456789"
ADMIN_HEADERS = {"X-API-Key": ADMIN}


def script(*steps: dict) -> str:
    return f"[[script:{json.dumps({'steps': list(steps)})}]]"


def outer_script() -> str:
    inner = script({"text": INNER_RESULT})
    return script(
        {"tool_use": {"name": "mcp__cca__cca_task", "input": {"prompt": inner}}},
        {"tool_use": {"name": "mcp__cca__cca_wait",
                      "input": {"task_id": "{tool_result.id}", "timeout_seconds": 60}}},
        {"text": "the fleet said: {tool_result}"},
    )


def finished(api_url: str, task_id: str, headers: dict[str, str] | None = None) -> dict:
    def check():
        task = httpx.get(f"{api_url}/api/v1/tasks/{task_id}", headers=headers, timeout=5).json()
        return task if task["status"] not in ("queued", "running") else None

    return wait_for(check, timeout_s=90, message=f"task {task_id} to finish")


def test_claude_with_the_bridge_hands_a_task_to_the_fleet(api_url, start_worker, model_api,
                                                          claude_bin, tmp_path):
    start_worker("w1")
    mcp_config = {"mcpServers": {"cca": {"type": "stdio", "command": sys.executable,
                                         "args": ["-m", "cca_mcp", "--daemon-url", api_url]}}}
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "ANTHROPIC_BASE_URL": model_api.url,
           "ANTHROPIC_API_KEY": "test", "CLAUDE_CODE_MAX_RETRIES": "0", "DISABLE_TELEMETRY": "1",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "PYTHONPATH": os.getcwd(),
           # What cca gives its agents: wait for the bridge before the first turn.
           "MCP_CONNECTION_NONBLOCKING": "0", "MCP_CONNECT_TIMEOUT_MS": "30000"}
    run = subprocess.run(
        [claude_bin, "-p", "--output-format", "stream-json", "--verbose",
         "--mcp-config", json.dumps(mcp_config), "--strict-mcp-config",
         "--allowedTools", "mcp__cca", "--", outer_script()],
        env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    init, result = events[0], events[-1]
    assert {"name": "cca", "status": "connected"} in init["mcp_servers"]
    assert result["subtype"] == "success" and not result["is_error"], result
    assert INNER_RESULT in result["result"]
    calls = [block["name"] for event in events if event["type"] == "assistant"
             for block in event["message"]["content"] if block["type"] == "tool_use"]
    assert calls == ["mcp__cca__cca_task", "mcp__cca__cca_wait"]
    tasks = httpx.get(f"{api_url}/api/v1/tasks", timeout=5).json()["tasks"]
    assert [(task["status"], task["result"]) for task in tasks] == [("succeeded", INNER_RESULT)]


def test_a_fleet_agent_submits_a_child_task_and_collects_its_result(config_data, tmp_path,
                                                                   start_worker):
    # With auth on: the agent's bridge authenticates with its task token, never a cca key.
    secured = {**config_data, "daemon": {**config_data["daemon"], "require_auth": True,
                                         "api_keys": [ADMIN], "task_token_secret": "t0ken-s3cret"}}
    api_url = start_api_process(tmp_path, secured)
    start_worker("w1", daemon={**secured["daemon"], "max_agents": 2},
                 agents={"bridge_url": api_url})
    outer = httpx.post(f"{api_url}/api/v1/tasks", json={"prompt": outer_script()},
                       headers=ADMIN_HEADERS, timeout=5).json()
    done = finished(api_url, outer["id"], ADMIN_HEADERS)
    assert done["status"] == "succeeded", done
    assert INNER_RESULT in done["result"]
    children = httpx.get(f"{api_url}/api/v1/tasks", params={"parent_id": outer["id"]},
                         headers=ADMIN_HEADERS, timeout=5).json()["tasks"]
    assert len(children) == 1
    child = children[0]
    assert (child["status"], child["result"], child["depth"]) == ("succeeded", INNER_RESULT, 1)
    assert child["parent_id"] == outer["id"] and done["depth"] == 0
    # The outer agent's task token reached its bridge through a 0600 file, never its argv.
    token = mint("t0ken-s3cret", outer["id"])
    configs = list(Path(config_data["embedded"]["data_dir"]).glob("slots/*/mcp.json"))
    assert configs and all(path.stat().st_mode & 0o077 == 0 for path in configs)
    assert [path for path in configs if token in path.read_text()]

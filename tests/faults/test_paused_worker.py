"""A worker paused past its lease (SIGSTOP: a hung host, a VM frozen) and then resumed (issue
19, item 3): another worker takes its task over, and the paused one, once it runs again, stops
its agent and does not finish the task someone else now owns. The real API, two real `cca
worker` processes and the real `claude` CLI against the scripted Messages API."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cca_api import create_app
from tests.support.fleet import FleetAPI, bash, claude_processes, tool_processes
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

SETTINGS = {"agents": {"lease_seconds": 3}}
COMMAND = "sleep 4; echo slept"


@pytest.fixture
def api(make_settings: Callable[..., Any]) -> FleetAPI:
    return FleetAPI(create_app(make_settings(**SETTINGS)).test_client())


def test_a_resumed_worker_does_not_finish_a_task_another_took_over(
        api, start_worker, model_api, tmp_path: Path, claude_bin: str):
    paused = start_worker("w1", daemon={"max_agents": 1}, **SETTINGS)
    marker = f"paused-{uuid.uuid4()}"
    task = api.submit(bash(COMMAND), {"text": "saw {tool_result}"}, prompt_prefix=marker + " ",
                      allowed_tools=["Bash"])
    api.wait_until(task["id"], lambda t: t["worker"] == paused.name and t["status"] == "running",
                   30, "to run on w1")
    start_worker("w2", daemon={"max_agents": 1}, **SETTINGS)
    os.killpg(paused.process.pid, signal.SIGSTOP)  # the worker and its pool, not its agent
    try:
        taken = api.wait_until(task["id"], lambda t: t["attempts"] == 2, 30,
                               "to be taken over by w2 once w1's lease lapsed")
        assert taken["worker"] == "w2@test"
    finally:
        os.killpg(paused.process.pid, signal.SIGCONT)
    ended = api.wait_terminal(task["id"], timeout_s=60)
    assert (ended["status"], ended["attempts"], ended["worker"]) == ("succeeded", 2, "w2@test"), ended
    # The second run resumed the first one's session (its tool result was checkpointed) and
    # answered; whatever the paused run read after it woke up is recorded under attempt 1 and
    # decides nothing.
    results = {event["attempt"]: event["data"].get("result") for event in api.events(task["id"])
               if event["type"] == "result"}
    assert ended["result"] == results[2], results
    time.sleep(2)  # w1 has run again meanwhile: its run must have stopped, and changed nothing
    assert api.get(task["id"])["result"] == ended["result"]
    wait_for(lambda: not claude_processes(tmp_path, claude_bin) and not tool_processes(tmp_path, COMMAND),
             timeout_s=10, message="every agent and tool of the task to be gone")

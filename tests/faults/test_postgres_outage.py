"""Postgres going away under running agents (issue 19, item 1): the real API, real `cca worker`
processes and the real `claude` CLI against the scripted Messages API, with the test's
database made unreachable mid-run (every connection cut, every new one refused), as a
Postgres restart or a network cut is for its clients.

What must hold: a run goes on through the outage (its heartbeats and events retried), a run
that finishes while Postgres is down keeps its finish in the worker's spool and records it
once Postgres is back (after a restart of its worker too), nobody runs its task again
meanwhile although its lease lapsed, and the API answers 503 while it is down."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cca_api import create_app
from cca_core.names import HELD_TASKS_KEY
from tests.support.fleet import FleetAPI, bash
from tests.support.postgres import unreachable
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

# A lease far shorter than the outage: without the hold, the task would be sent again.
SETTINGS = {"agents": {"lease_seconds": 2}, "worker": {"postgres_outage_seconds": 120}}


@pytest.fixture
def api(make_settings: Callable[..., Any]) -> FleetAPI:
    return FleetAPI(create_app(make_settings(**SETTINGS)).test_client())


def spooled(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob("spool/*/*.json"))


def main_requests(model_api: Any, marker: str) -> int:
    return sum(1 for rec in model_api.records
               if rec["main"] and marker in str(rec["body"]["messages"][0]))


def submit_sleeper(api: FleetAPI, seconds: int) -> tuple[dict[str, Any], str]:
    marker = f"outage-{uuid.uuid4()}"
    task = api.submit(bash(f"sleep {seconds}; echo slept"), {"text": f"done {marker}"},
                      prompt_prefix=marker + " ", allowed_tools=["Bash"])
    return task, marker


def wait_tool_started(api: FleetAPI, task_id: str) -> None:
    def started() -> bool:
        return any(event["type"] == "assistant" and "tool_use" in json.dumps(event["data"])
                   for event in api.events(task_id))

    wait_for(started, timeout_s=60, message=f"task {task_id}'s tool to start")


def test_a_run_outlives_a_postgres_outage_and_its_finish_waits_in_the_spool(
        api, start_worker, model_api, pg_server, database_url, redis_client, config_data):
    data_dir = Path(config_data["embedded"]["data_dir"])
    start_worker("w1", daemon={"max_agents": 1}, **SETTINGS)
    start_worker("w2", daemon={"max_agents": 1}, **SETTINGS)  # would take the task if it could
    task, marker = submit_sleeper(api, 3)
    wait_tool_started(api, task["id"])
    with unreachable(pg_server, database_url):
        # The tool ends, the model answers, claude exits: the finish cannot be written.
        wait_for(lambda: spooled(data_dir), timeout_s=30, message="the finish to be spooled")
        assert redis_client.hexists(HELD_TASKS_KEY, task["id"])
        down = api.client.get(f"/api/v1/tasks/{task['id']}")
        assert down.status_code == 503 and down.get_json()["error"]["code"] == "unavailable"
        assert "Traceback" not in down.get_data(as_text=True)
        refused = api.client.post("/api/v1/tasks", json={"prompt": "while down"})
        assert refused.status_code == 503, refused.get_json()
        time.sleep(4)  # two leases and more: the sweep would now send the task again
    ended = api.wait_terminal(task["id"], timeout_s=30)
    assert (ended["status"], ended["attempts"]) == ("succeeded", 1), ended
    assert marker in ended["result"]
    assert main_requests(model_api, marker) == 2  # the tool call and the answer, once each
    kinds = [(event["type"], event["subtype"]) for event in api.events(task["id"])]
    assert kinds[0] == ("system", "init") and kinds[-1] == ("result", "success"), kinds
    assert {event["attempt"] for event in api.events(task["id"])} == {1}
    listed = api.client.get("/api/v1/tasks").get_json()  # nothing half-written by the refused one
    assert [row["id"] for row in listed["tasks"]] == [task["id"]]
    wait_for(lambda: not spooled(data_dir) and not redis_client.hexists(HELD_TASKS_KEY, task["id"]),
             timeout_s=10, message="the spool to be empty and the hold released")


def test_a_spooled_finish_is_recorded_by_its_worker_after_a_restart(
        api, start_worker, model_api, pg_server, database_url, redis_client, config_data):
    data_dir = Path(config_data["embedded"]["data_dir"])
    worker = start_worker("w1", daemon={"max_agents": 1}, **SETTINGS)
    task, marker = submit_sleeper(api, 2)
    wait_tool_started(api, task["id"])
    start_worker("w2", daemon={"max_agents": 1}, **SETTINGS)  # would take the task if it could
    with unreachable(pg_server, database_url):
        wait_for(lambda: spooled(data_dir), timeout_s=30, message="the finish to be spooled")
        [kept] = spooled(data_dir)
        assert kept.parent.name == worker.name
        os.killpg(worker.process.pid, signal.SIGKILL)  # the worker's host goes down with it
        worker.process.wait()
        time.sleep(3)  # its lease lapses
    time.sleep(3)  # w2 sweeps every second: a task without its hold would be sent and run again
    held = api.get(task["id"])
    assert (held["status"], held["attempts"]) == ("running", 1), held
    start_worker("w1", daemon={"max_agents": 1}, **SETTINGS)  # the same worker comes back
    ended = api.wait_terminal(task["id"], timeout_s=30)
    assert (ended["status"], ended["attempts"]) == ("succeeded", 1), ended
    assert marker in ended["result"]
    assert main_requests(model_api, marker) == 2
    # The replay records the finish, then deletes its file and releases the hold.
    wait_for(lambda: not spooled(data_dir) and not redis_client.hexists(HELD_TASKS_KEY, task["id"]),
             timeout_s=10, message="the spool file and the hold to go")


def test_a_task_delivered_while_postgres_is_down_waits_in_its_slot(
        api, start_worker, model_api, pg_server, database_url, config_data):
    """Its claim is tried again with backoff; the message is not dropped (it would otherwise
    wait for the sweep's resend_after_seconds)."""
    start_worker("w1", daemon={"max_agents": 1}, **SETTINGS)
    first, _ = submit_sleeper(api, 3)
    wait_tool_started(api, first["id"])
    second, marker = submit_sleeper(api, 1)  # waits in Redis for the one slot
    with unreachable(pg_server, database_url):
        # The first run ends (its finish spooled), the slot takes the second's message.
        wait_for(lambda: spooled(Path(config_data["embedded"]["data_dir"])), timeout_s=30,
                 message="the first finish to be spooled")
        time.sleep(3)
    for task in (first, second):
        ended = api.wait_terminal(task["id"], timeout_s=60)
        assert (ended["status"], ended["attempts"]) == ("succeeded", 1), ended
    assert main_requests(model_api, marker) == 2

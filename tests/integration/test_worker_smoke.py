"""Real worker processes run a real `claude` against the scripted Messages API: the basic
path, the live event stream in Redis, and the per-worker rolling token budget."""

from __future__ import annotations

import json

import pytest

from cca_api import create_app
from cca_core.names import events_stream_key, worker_key
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def script(*steps: dict) -> str:
    return f"[[script:{json.dumps({'steps': list(steps)})}]]"


def finished(client, task_id: str, timeout_s: float = 60) -> dict:
    def check():
        task = client.get(f"/api/v1/tasks/{task_id}").get_json()
        return task if task["status"] not in ("queued", "running") else None

    return wait_for(check, timeout_s=timeout_s, message=f"task {task_id} to finish")


def test_submitted_task_runs_on_a_worker_and_streams_its_events(make_settings, start_worker,
                                                                 redis_client):
    client = create_app(make_settings()).test_client()
    start_worker("w1")
    task = client.post("/api/v1/tasks", json={"prompt": script({"text": "hello from the fleet"})})
    done = finished(client, task.get_json()["id"])
    assert done["status"] == "succeeded", done
    assert done["result"] == "hello from the fleet"
    assert (done["worker"], done["attempts"]) == ("w1@test", 1)
    key = events_stream_key(done["id"])
    live = [json.loads(fields[b"event"]) for _, fields in redis_client.xrange(key)]
    assert live[0]["type"] == "system" and live[-1]["type"] == "result"
    assert 0 < redis_client.ttl(key) <= 600
    stored = client.get(f"/api/v1/tasks/{done['id']}/events").get_json()["events"]
    assert [event["data"] for event in stored] == live


def test_a_worker_over_its_rolling_token_budget_leaves_tasks_for_others(make_settings, start_worker,
                                                                         redis_client):
    client = create_app(make_settings()).test_client()
    frugal = start_worker("frugal", worker={"token_budget_per_window": 1000,
                                            "budget_window_seconds": 600})
    expensive = {"text": "spent", "usage": {"input_tokens": 5000, "output_tokens": 10}}
    first = client.post("/api/v1/tasks", json={"prompt": script(expensive)}).get_json()
    # Its message crosses the window as it streams: the run stops and its task is parked for
    # another worker (due at once: the next sweep, within a second, sends it again, so the
    # check is on what stays), and the worker stops taking tasks.
    parked = wait_for(lambda: (task := client.get(f"/api/v1/tasks/{first['id']}").get_json())[
        "status"] == "queued" and task["error"] and task, timeout_s=60, message="the task to be parked")
    assert parked["error"]["code"] == "worker_budget_exceeded" and parked["worker"] == frugal.name
    [run] = client.get(f"/api/v1/tasks/{first['id']}/attempts").get_json()["attempts"]
    assert (run["error"]["code"], run["worker"]) == ("worker_budget_exceeded", frugal.name)
    assert run["retry_at"] is not None
    wait_for(lambda: json.loads(redis_client.get(worker_key(frugal.name)))["paused_for_budget"],
             timeout_s=10, message="the worker to pause for its budget")
    second = client.post("/api/v1/tasks", json={"prompt": script({"text": "second"})}).get_json()
    with pytest.raises(AssertionError):
        wait_for(lambda: client.get(f"/api/v1/tasks/{second['id']}").get_json()["status"] != "queued",
                 timeout_s=3, message="the paused worker to leave the task queued")
    other = start_worker("other")
    done = finished(client, second["id"])
    assert (done["status"], done["worker"]) == ("succeeded", other.name)
    resumed = finished(client, first["id"])
    assert (resumed["status"], resumed["worker"], resumed["attempts"]) == ("succeeded", other.name, 2)

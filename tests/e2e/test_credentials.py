"""Credentials with usage windows, end to end: a real worker with more slots than its credentials'
caps lends them to the real `claude` through its proxy, against a scripted Messages API that
enforces one request in flight per key and closes a usage window on each key."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from cca_api import create_app
from tests.fakes.model_api import KeyLimits, ModelAPI, Window
from tests.support.fleet import FleetAPI, bash, ts

pytestmark = pytest.mark.e2e
TASKS = 6
WINDOW_S = 15


@pytest.fixture
def limited_api() -> Iterator[ModelAPI]:
    # Each run makes two requests (its tool call, its answer): a key's window closes during
    # its second run, and both are closed at once for a while.
    window = Window(after_requests=3, seconds=WINDOW_S)
    keys = {"key-a": KeyLimits(max_concurrent=1, window=window),
            "key-b": KeyLimits(max_concurrent=1, window=window)}
    with ModelAPI(keys=keys) as api:
        yield api


def test_runs_wait_for_credentials_with_room_and_for_usage_windows_then_resume(
        make_settings, start_worker, limited_api):
    credentials = {name: {"api_key": f"key-{name}", "base_url": limited_api.url, "max_agents": 1}
                   for name in ("a", "b")}
    sections: dict[str, Any] = {"credentials": credentials, "daemon": {"max_agents": 3},
                                "agents": {"window_wait_seconds": 0}}
    start_worker("w1", **sections)  # three slots, two credentials of one agent each
    api = FleetAPI(create_app(make_settings(**sections)).test_client())
    # (a resumed run's request holds more assistant turns: later steps answer the same)
    tasks = [api.submit(bash(f"echo task-{n}"), *[{"text": f"done {n}"}] * 3,
                        allowed_tools=["Bash(echo *)"])["id"] for n in range(TASKS)]
    seen: set[tuple[str, bool]] = set()  # (waiting_for, with a retry_at) of queued tasks
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for task_id in tasks:
                task = api.get(task_id)
                if task["status"] == "queued" and task["waiting_for"]:
                    seen.add((task["waiting_for"], task["retry_at"] is not None))
            stop.wait(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        done = [api.wait_terminal(task_id, timeout_s=150) for task_id in tasks]
    finally:
        stop.set()
        watcher.join()

    assert [task["status"] for task in done] == ["succeeded"] * TASKS, done
    assert sorted(task["result"] for task in done) == [f"done {n}" for n in range(TASKS)]
    # cca's spawning never put two requests of one key in flight
    assert limited_api.refused_concurrency == {}
    # each window was met once; the proxy answered its credential's later requests itself
    assert limited_api.refused_window == {"key-a": 1, "key-b": 1}
    assert ("credential", True) in seen and ("usage_window", True) in seen, seen
    # each tool ran once: a run turned away after its tool resumed its session
    for task_id in tasks:
        results = [event for event in api.events(task_id) if event["type"] == "user"
                   and "tool_result" in str(event["data"])]
        assert len(results) == 1, (task_id, results)

    resets = sorted(limited_api.window_resets.values())
    turned_away = 0
    for task in done:
        attempts = api.client.get(f"/api/v1/tasks/{task['id']}/attempts").get_json()["attempts"]
        *earlier, last = attempts
        assert last["status"] == "succeeded"
        for attempt in earlier:
            turned_away += 1
            assert (attempt["status"], attempt["error"]["code"]) == ("failed", "rate_limited"), attempt
            assert attempt["retry_at"] is not None
        if earlier:  # it ran again once a window had reset, and within 60 s of it
            started = ts(last["started_at"])
            assert resets[0] - 0.5 <= started <= resets[-1] + 60, (started, resets)
    assert turned_away >= 1
    keys = Counter(record["key"] for record in limited_api.records)
    assert set(keys) == {"key-a", "key-b"}  # the worker's own ANTHROPIC_API_KEY was never used

    shown = api.client.get("/api/v1/credentials").get_json()["credentials"]
    assert [(row["name"], row["max_agents"], row["agents"]) for row in shown] == [("a", 1, 0), ("b", 1, 0)]
    for row in shown:  # every request the model API answered went through the proxy, counted
        assert row["today"]["requests"] == keys[f"key-{row['name']}"] + 1  # + the refused one
        assert row["today"]["output_tokens"] > 0
        assert row["rate_limits"]["anthropic-ratelimit-requests-remaining"] == "0"
    assert "key-a" not in json.dumps(shown)

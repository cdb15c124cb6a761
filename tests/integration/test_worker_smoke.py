"""A real worker process runs a real `claude` against the scripted Messages API."""

from __future__ import annotations

import json

import pytest

from cca_api import create_app
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_submitted_task_runs_on_a_worker_and_succeeds(make_settings, start_worker):
    client = create_app(make_settings()).test_client()
    start_worker("w1")
    script = json.dumps({"steps": [{"text": "hello from the fleet"}]})
    task = client.post("/api/v1/tasks", json={"prompt": f"[[script:{script}]]"}).get_json()
    done = wait_for(lambda: (t := client.get(f"/api/v1/tasks/{task['id']}").get_json())["status"]
                    not in ("queued", "running") and t, timeout_s=60, message="task to finish")
    assert done["status"] == "succeeded", done
    assert done["result"] == "hello from the fleet"
    assert done["worker"] == "w1@test"
    assert done["attempts"] == 1

"""Flower on the fleet's broker: basic auth, readable tasks with a safe preview, worker events."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from cca_api import create_app
from cca_core.infra.embedded import free_port
from tests.support import toml
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
AUTH = ("ops", "flower-pw-123")


@pytest.fixture
def flower_url(tmp_path, config_data):
    port = free_port()
    config = toml.write(tmp_path / "flower.toml",
                        {**config_data, "flower": {"port": port, "basic_auth": [":".join(AUTH)]}})
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CCA")},
           "CCA_CONFIG": str(config)}
    process = subprocess.Popen([sys.executable, "-m", "cca_cli.main", "flower"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/api/workers", auth=AUTH, timeout=2).status_code == 200
        except httpx.TransportError:
            return process.poll() is not None

    wait_for(ready, timeout_s=30, message="Flower to answer")
    assert process.poll() is None
    yield url
    process.terminate()
    process.wait(15)


def test_flower_shows_the_task_with_a_safe_preview(flower_url, make_settings, start_worker):
    assert httpx.get(f"{flower_url}/api/tasks", timeout=5).status_code == 401
    assert httpx.get(f"{flower_url}/api/tasks", auth=("ops", "wrong"), timeout=5).status_code == 401
    worker = start_worker("w1")
    client = create_app(make_settings()).test_client()
    script = json.dumps({"steps": [{"text": "done"}]})
    prompt = f"deploy with password=hunter2 [[script:{script}]]"
    task = client.post("/api/v1/tasks", json={"prompt": prompt}).get_json()

    def seen():
        tasks = httpx.get(f"{flower_url}/api/tasks", auth=AUTH, timeout=5).json()
        return next((info for info in tasks.values() if task["id"] in (info.get("args") or "")
                     and info.get("state") == "SUCCESS"), None)

    info = wait_for(seen, timeout_s=60, interval_s=0.5, message="Flower to see the task succeed")
    assert info["name"] == "cca.run_agent"
    assert info["args"].startswith(task["id"]) and "deploy with" in info["args"]
    assert "hunter2" not in json.dumps(info)
    wait_for(lambda: worker.name in httpx.get(f"{flower_url}/api/workers", params={"refresh": 1},
                                              auth=AUTH, timeout=10).json(),
             timeout_s=20, interval_s=1, message="Flower to list the worker")

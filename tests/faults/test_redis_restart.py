"""Redis restarted under load (issue 19, item 2): the real API, two real `cca worker` processes,
the real `claude` CLI against the scripted Messages API, and a Redis of the test's own with
AOF on, stopped and started again (as ``docker restart`` does: SIGTERM, then the same data)
while tasks are queued and running.

The rule while Redis is down: a submission is accepted and kept (its row is the record); its
message is sent by the sweep's first turn once Redis is back. What must hold: no task lost, none
run twice, and the workers reconnect by themselves."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cca_api import create_app
from cca_core.infra.embedded import EmbeddedRedis, free_port, start_redis
from cca_core.names import worker_key
from tests.support.fleet import FleetAPI
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


class RestartableRedis:
    """redis-server with AOF, on one port and data directory across restarts."""

    def __init__(self, data: Path) -> None:
        self.data, self.port = data, free_port()
        self.server: EmbeddedRedis | None = None
        self.start()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def start(self) -> None:
        self.server = start_redis(self.data, appendonly=True, port=self.port)

    def stop(self) -> None:
        assert self.server is not None
        self.server.stop()  # SIGTERM: Redis writes its AOF out and exits


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(tmp_path / "redis-aof")
    yield server
    server.stop()


@pytest.fixture
def redis_url(aof_redis: RestartableRedis) -> str:
    """Every part of the test (API, workers, the test's client) on the restartable Redis."""
    return aof_redis.url


@pytest.fixture
def api(make_settings: Callable[..., Any]) -> FleetAPI:
    return FleetAPI(create_app(make_settings()).test_client())


def test_a_redis_restart_under_load_loses_no_task_and_runs_none_twice(
        api, aof_redis, start_worker, model_api, redis_client):
    workers = [start_worker(name, daemon={"max_agents": 2}) for name in ("w1", "w2")]
    markers: dict[str, str] = {}

    def submit() -> None:
        marker = f"redis-{uuid.uuid4()}"
        task = api.submit({"text": f"done {marker}", "delay": 0.3}, prompt_prefix=marker + " ")
        markers[task["id"]] = marker

    for _ in range(12):
        submit()
    wait_for(lambda: sum(api.get(task_id)["status"] != "queued" for task_id in markers) >= 3,
             timeout_s=60, message="the first tasks to start")
    aof_redis.stop()
    for _ in range(3):  # accepted while Redis is down: kept, sent once it is back
        submit()
    aof_redis.start()
    ended = {task_id: api.wait_terminal(task_id, timeout_s=120) for task_id in markers}
    assert {task["status"] for task in ended.values()} == {"succeeded"}, ended
    assert all(task["attempts"] == 1 for task in ended.values()), ended
    for task_id, marker in markers.items():  # each ran once: one model request each
        assert sum(1 for rec in model_api.records
                   if rec["main"] and marker in str(rec["body"]["messages"][0])) == 1, task_id
    for worker in workers:  # they reconnected by themselves and announce themselves again
        wait_for(lambda name=worker.name: redis_client.exists(worker_key(name)), timeout_s=15,
                 message=f"{worker.name} to announce itself again")
        assert worker.process.poll() is None

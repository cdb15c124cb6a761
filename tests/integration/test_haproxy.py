"""The real haproxy with ops/haproxy/haproxy.cfg in front of two real API processes: a few
hundred submissions with Idempotency-Keys survive the death of one API process, each
accepted exactly once; both backends served traffic; the health check takes out the dead one;
a live follower goes on through the other one."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import create_engine, text

from cca_core.infra import sse
from cca_core.infra.api_client import CcaClient
from cca_core.infra.db import autocommit, sqlalchemy_url
from cca_core.infra.embedded import free_port
from cca_core.tasks import store
from cca_core.tasks.outcome import Outcome
from cca_worker.events import EventSink
from tests.conftest import api_processes, start_api_process
from tests.support.haproxy import CONFIG, haproxy_path, render, servers
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
SUBMISSIONS = 300
CLIENTS = 6
KILL_AFTER = 100


@pytest.fixture
def haproxy_bin() -> str:
    path = haproxy_path()
    assert path, "haproxy is not installed: .ci/run installs Debian's haproxy"
    return path


@pytest.fixture
def balanced(tmp_path, config_data, haproxy_bin) -> Iterator[tuple[str, str, list[str]]]:
    backends = [start_api_process(tmp_path, config_data, name) for name in ("api-1", "api-2")]
    port, stats_port = free_port(), free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(render([url.removeprefix("http://") for url in backends], port, stats_port))
    check = subprocess.run([haproxy_bin, "-c", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    proxy = subprocess.Popen([haproxy_bin, "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    url, stats = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{stats_port}/stats;csv"
    wait_for(lambda: servers(stats).get("api1", {}).get("status") == "UP"
             and servers(stats).get("api2", {}).get("status") == "UP", timeout_s=20,
             message="haproxy to see both backends up")
    yield url, stats, backends
    proxy.terminate()
    proxy.wait(10)


def test_the_shipped_config_starts_while_backend_names_do_not_resolve(tmp_path, haproxy_bin):
    # Outside Docker, cca-api-1 and cca-api-2 resolve nowhere: as when HAProxy starts first.
    check = subprocess.run([haproxy_bin, "-c", "-f", str(CONFIG)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    port, stats_port = free_port(), free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.read_text().replace("bind :9200", f"bind 127.0.0.1:{port}")
                      .replace("bind 127.0.0.1:8404", f"bind 127.0.0.1:{stats_port}"))
    proxy = subprocess.Popen([haproxy_bin, "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        stats = f"http://127.0.0.1:{stats_port}/stats;csv"
        known = wait_for(lambda: servers(stats), timeout_s=20, message="haproxy to serve stats")
        assert set(known) >= {"api1", "api2"}
        assert all(not row["status"].startswith("UP") for row in known.values()), known
        response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        assert response.status_code == 503  # up and answering, with no backend yet
        assert proxy.poll() is None
    finally:
        proxy.terminate()
        proxy.wait(10)


def submit_with_retries(url: str, key: str) -> str:
    """What a careful client does: retry with the same Idempotency-Key until accepted."""
    for _ in range(60):
        try:
            response = httpx.post(f"{url}/api/v1/tasks", json={"prompt": f"task {key}"},
                                  headers={"Idempotency-Key": key}, timeout=10)
        except httpx.TransportError:
            continue
        if response.status_code in (200, 202):
            return response.json()["id"]
        assert response.status_code in (502, 503, 504), response.text
    raise AssertionError(f"submission {key} never accepted")


def test_submissions_survive_a_dead_api_process_exactly_once(balanced, database_url):
    url, stats, backends = balanced
    accepted: dict[str, str] = {}
    lock = threading.Lock()
    killed = threading.Event()
    served_before_kill: dict[str, int] = {}

    def client(worker: int) -> None:
        for i in range(worker, SUBMISSIONS, CLIENTS):
            key = f"submission-{i}"
            task_id = submit_with_retries(url, key)
            with lock:
                accepted[key] = task_id
                if len(accepted) == KILL_AFTER and not killed.is_set():
                    served_before_kill.update({name: int(row["stot"])
                                               for name, row in servers(stats).items()})
                    os.killpg(api_processes[backends[1]].pid, signal.SIGKILL)
                    killed.set()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert killed.is_set()
    assert served_before_kill["api1"] > 0 and served_before_kill["api2"] > 0, served_before_kill
    wait_for(lambda: servers(stats)["api2"]["status"].startswith("DOWN"), timeout_s=10,
             message="the health check to take the dead backend out")
    assert servers(stats)["api1"]["status"] == "UP"

    engine = create_engine(sqlalchemy_url(database_url))
    with engine.connect() as connection:
        rows = dict(connection.execute(text(
            "SELECT idempotency_key, id::text FROM tasks WHERE idempotency_key IS NOT NULL")).all())
        total = connection.execute(text("SELECT count(*) FROM tasks")).scalar()
    engine.dispose()
    assert len(accepted) == SUBMISSIONS
    assert total == SUBMISSIONS  # no duplicate
    assert rows == accepted  # no loss, and every client saw the task its key made


def test_a_live_follower_through_haproxy_outlives_an_api_process(balanced, engine, redis_client):
    """SSE passes HAProxy unbuffered; when the API process serving a follower dies, the client
    follows again through the other one from its last event: every event once, in order."""
    url, stats, backends = balanced
    task_id = httpx.post(f"{url}/api/v1/tasks", json={"prompt": "followed"}, timeout=10).json()["id"]
    with autocommit(engine) as connection:
        assert store.claim_task(connection, task_id, worker="w1", pid=1, lease_s=60, max_attempts=3)
    sink = EventSink(engine, redis_client, task_id, 1, ttl_s=600, max_events=1000)
    seen: list[sse.ServerEvent] = []
    follower = threading.Thread(target=lambda: seen.extend(CcaClient(url).follow(task_id)))
    follower.start()

    def publish(numbers: range) -> None:
        for n in numbers:
            sink.add({"type": "assistant", "n": n})
            sink.flush()

    publish(range(3))
    wait_for(lambda: sum(event.event == "event" for event in seen) == 3, timeout_s=10,
             message="the first events to pass HAProxy")
    serving = [backend for name, backend in zip(("api1", "api2"), backends, strict=True)
               if int(servers(stats)[name]["scur"]) > 0]
    assert len(serving) == 1, servers(stats)
    os.killpg(api_processes.pop(serving[0]).pid, signal.SIGKILL)
    publish(range(3, 6))
    with autocommit(engine) as connection:
        store.finish_task(connection, task_id, 1, Outcome(status="succeeded"))
    follower.join(60)
    assert not follower.is_alive()
    assert [event.data["data"]["n"] for event in seen if event.event == "event"] == list(range(6))
    assert seen[-1].event == "end" and seen[-2].data["status"] == "succeeded"

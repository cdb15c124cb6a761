"""The faults of the fleet's front for ``bench.faults``: an API process killed behind HAProxy
while clients submit, and the leading beat killed while a schedule fires.

``api-killed``: two API processes behind the shipped HAProxy config, three clients submitting
through it with Idempotency-Keys (retrying as a careful client does); one API process is
SIGKILLed once a third are accepted. Twice: a key that made two tasks, or a task run twice.
Recovery: the longest a client waited for one submission to be accepted.

``beat-leader``: two ``cca beat`` processes and a schedule firing every second; the leader is
SIGKILLed after a third of the fires. Lost: a moment of the schedule's grid that never fired,
or a fire that did not succeed. Twice: a moment fired twice, or a task run twice. Recovery:
from the kill until the new leader's first fire (the moments it missed meanwhile are fired
late, within ``misfire_grace_seconds``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from bench.config import child_env
from bench.launch import START_TIMEOUT_S, api_server
from bench.servers import Bench
from bench.waiting import BenchError, wait_until
from cca_core.infra.db import make_session_factory, transaction
from cca_core.infra.embedded import free_port
from cca_core.models import Task
from cca_core.schedules import lifecycle as schedules
from cca_core.schedules.schemas import ScheduleCreate
from tests.support.haproxy import haproxy_path, render, servers

CLIENTS = 3
BEAT = {"tick_seconds": 0.5, "misfire_grace_seconds": 30, "leader_timeout_seconds": 5}
FIRE_EVERY_S = 1


def api_round(bench: Bench, start_workers: Callable[[], None], body: dict[str, Any], tasks: int,
              ) -> tuple[list[str], float, int]:
    """Submit ``tasks`` through HAProxy, killing one API process on the way. Returns the
    accepted task ids, the longest wait for an acceptance, and how many keys made more
    than one task."""
    haproxy = haproxy_path()
    if haproxy is None:
        raise BenchError("api-killed needs haproxy (Debian's package; ./scripts/setup installs it)")
    with ExitStack() as stack:
        backends = [stack.enter_context(api_server(bench, processes=1, name=f"api-{n}")) for n in (1, 2)]
        port, stats_port = free_port(), free_port()
        config = bench.root / "haproxy.cfg"
        config.write_text(render([url.removeprefix("http://") for url in backends], port, stats_port))
        proxy = bench.children.start("haproxy", [haproxy, "-db", "-f", str(config)], child_env(), bench.root)
        stack.callback(proxy.stop)
        stats = f"http://127.0.0.1:{stats_port}/stats;csv"
        both_up = ("api1", "api2")
        wait_until(lambda: all(servers(stats).get(name, {}).get("status") == "UP" for name in both_up),
                   timeout_s=START_TIMEOUT_S, what="haproxy to see both APIs up", child=proxy, interval_s=0.2)
        start_workers()
        run = uuid.uuid4().hex[:8]
        accepted: dict[str, str] = {}
        waits: list[float] = []
        lock = threading.Lock()
        victim = bench.children.named("api-2")

        def client(first: int) -> None:
            for n in range(first, tasks, CLIENTS):
                key = f"fault-{run}-{n}"
                began = time.monotonic()
                task_id = _submit(f"http://127.0.0.1:{port}", key, body)
                with lock:
                    accepted[key] = task_id
                    waits.append(time.monotonic() - began)
                    if len(accepted) == tasks // 3:
                        os.killpg(victim.popen.pid, signal.SIGKILL)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    with bench.engine.connect() as connection:
        made = connection.scalar(select(func.count()).where(Task.idempotency_key.like(f"fault-{run}-%")))
    if len(accepted) < tasks:
        raise BenchError(f"api-killed: {tasks - len(accepted)} submissions never accepted")
    return list(accepted.values()), max(waits), (made or 0) - len(set(accepted.values()))


def _submit(url: str, key: str, body: dict[str, Any]) -> str:
    """POST until accepted, with the same Idempotency-Key every time."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            response = httpx.post(f"{url}/api/v1/tasks", json=body, headers={"Idempotency-Key": key},
                                  timeout=10)
        except httpx.TransportError:
            continue
        if response.status_code in (200, 202):
            return str(response.json()["id"])
        if response.status_code not in (502, 503, 504):
            raise BenchError(f"api-killed: submission {key} refused: {response.status_code} {response.text}")
    raise BenchError(f"api-killed: submission {key} not accepted within 60 s")


def beat_round(bench: Bench, start_workers: Callable[[], None], body: dict[str, Any], tasks: int,
               ) -> tuple[list[str], float, int, int]:
    """Let a schedule fire ``tasks`` times while its leading beat is killed. Returns the
    fired task ids, the takeover time, moments fired twice and moments missed."""
    start_workers()
    sessions = make_session_factory(bench.engine)
    with transaction(sessions) as session:
        schedule = schedules.create_schedule(
            session, ScheduleCreate.model_validate({"name": f"fault-{uuid.uuid4().hex[:8]}", "task": body,
                                                    "interval_seconds": FIRE_EVERY_S, "overlap": "allow"}),
            owner="bench", created_by="bench", agents=bench.settings().agents, default_queue="cca")
        schedule_id = schedule.id
    config = bench.write_config("beat", 2, sections={"beat": BEAT})
    beats = [bench.children.start(f"beat-{n}", [sys.executable, "-m", "cca_cli.main", "beat"],
                                  child_env(CCA_CONFIG=str(config)), bench.root) for n in (1, 2)]
    try:
        wait_until(lambda: len(_fires(bench, schedule_id)) >= tasks // 3 or None, timeout_s=120,
                   what="a third of the fires", interval_s=0.2)
        leader = next((beat for beat in beats if "beat: leading" in beat.log_tail(100_000)), None)
        if leader is None:
            raise BenchError("beat-leader: no beat says it leads")
        killed = time.time()
        leader.popen.kill()
        wait_until(lambda: len(_fires(bench, schedule_id)) >= tasks or None, timeout_s=120,
                   what="the rest of the fires", interval_s=0.2)
    finally:
        for beat in beats:
            beat.stop()
    with transaction(sessions) as session:
        schedules.set_enabled(session, str(schedule_id), False, owner=None)
    fires = _fires(bench, schedule_id)
    moments = [moment for _, moment, _ in fires]
    after = [made for _, _, made in fires if made.timestamp() > killed]
    grid = int((max(moments) - min(moments)) / timedelta(seconds=FIRE_EVERY_S)) + 1
    takeover = (min(after).timestamp() - killed) if after else float("inf")
    return ([task_id for task_id, _, _ in fires], max(0.0, takeover), len(moments) - len(set(moments)),
            grid - len(set(moments)))


def _fires(bench: Bench, schedule_id: Any) -> list[tuple[str, Any, Any]]:
    """Each fire's task id, moment on the grid and when it was made."""
    with bench.engine.connect() as connection:
        return [(str(row.id), row.scheduled_for, row.created_at) for row in connection.execute(
            select(Task.id, Task.scheduled_for, Task.created_at).where(Task.schedule_id == schedule_id)
            .order_by(Task.scheduled_for))]

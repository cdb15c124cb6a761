"""(i) Live follow: the delay from a worker writing an event to a follower receiving it.

One task, "running"; a writer in this process records an event every ``INTERVAL_S`` through
the worker's own ``EventSink`` (INSERT into ``task_events``, then XADD under the event's id),
stamping the wall-clock time just before the write into the event. N followers, each a
thread with its own connection, read ``GET /api/v1/tasks/{id}/stream`` from one API host
(``cca api``: gunicorn, 2 processes, gthread) and note when each event arrived. The baseline
is the floor of any design that streams through Redis: N threads reading the same Redis
stream directly (``XREAD BLOCK``), with no Postgres write before it and no HTTP after it.
Followers run in the benchmark's process, on the same two cores as the API: their own
parsing is counted in both columns.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from functools import partial

import httpx
import redis

from bench.launch import api_server
from bench.plan import Counts
from bench.report import Row, Section, ms, percentile
from bench.servers import Bench
from bench.waiting import BenchError
from cca_core.infra import sse
from cca_core.infra.db import autocommit
from cca_core.names import events_stream_key
from cca_core.tasks import store
from cca_core.tasks.outcome import Outcome
from cca_worker.events import EventSink

INTERVAL_S = 0.1
TARGET_P99_MS = 250.0


def measure(bench: Bench, counts: Counts) -> Section:
    rows, notes = [], []
    events = counts.live_events
    with api_server(bench, processes=2) as url:
        for followers in counts.live_followers:
            api, api_connect = _round(bench, followers, events, partial(_follow_api, url))
            floor, _ = _round(bench, followers, events, partial(_follow_redis, bench.redis_url))
            for q in (50, 99):
                cca_ms, base_ms = ms(percentile(api, q)), ms(percentile(floor, q))
                target = q == 99 and followers >= 200
                rows.append(Row(f"(i) event -> follower p{q}, {followers} followers (ms)", cca_ms,
                                base_ms, f"{cca_ms / base_ms:.2f}x" if base_ms else "-",
                                f"<= {TARGET_P99_MS:g}" if target else "-",
                                cca_ms <= TARGET_P99_MS if target else None))
            notes.append(f"(i) {followers} followers x {events} events: cca max "
                         f"{ms(max(api)):.0f} ms, direct Redis max {ms(max(floor)):.0f} ms; "
                         f"all {followers} connected and caught up in {api_connect:.2f} s")
    bench.reset()
    notes.append(f"(i) one event every {INTERVAL_S * 1000:.0f} ms through the worker's EventSink "
                 "(INSERT, then XADD); followers over SSE from one API host (2 gunicorn "
                 "processes, gthread); baseline: the same number of XREAD BLOCK readers on the "
                 "stream itself")
    return Section(rows, notes)


def _round(bench: Bench, followers: int, events: int,
           follow: Callable[[str, threading.Event, Callable[[dict | None], None]], None],
           ) -> tuple[list[float], float]:
    bench.reset()
    task_id = _running_task(bench)
    return _delays(bench, task_id, followers, events, partial(follow, task_id))


def _running_task(bench: Bench) -> str:
    with autocommit(bench.engine) as connection:
        task, _ = store.create_task(connection, bench.task_values())
        store.claim_task(connection, str(task.id), worker="bench", pid=1, lease_s=600, max_attempts=3)
    return str(task.id)


Follow = Callable[[threading.Event, Callable[[dict | None], None]], None]


def _delays(bench: Bench, task_id: str, followers: int, events: int,
            follow: Follow) -> tuple[list[float], float]:
    """Start the followers, write ``events`` events; return every (event, follower) delay and
    how long the followers took to connect."""
    began = time.monotonic()
    delays: list[float] = []
    lock = threading.Lock()
    connected = threading.Semaphore(0)
    stop = threading.Event()

    def got(event: dict | None) -> None:  # None: the follower is connected and caught up
        if event is None:
            connected.release()
        elif "sent" in event:
            with lock:
                delays.append(time.time() - event["sent"])

    threads = [threading.Thread(target=follow, args=(stop, got), daemon=True) for _ in range(followers)]
    for thread in threads:
        thread.start()
    for _ in range(followers):
        if not connected.acquire(timeout=60):
            raise BenchError(f"(i) not every one of {followers} followers connected: {errors[:3]}")
    connect_s = time.monotonic() - began
    sink = EventSink(bench.engine, bench.redis, task_id, 1, ttl_s=600, max_events=10_000)
    for n in range(events):
        sink.add({"type": "bench", "n": n, "sent": time.time()})
        sink.flush()
        time.sleep(INTERVAL_S)
    deadline = time.monotonic() + 10
    while len(delays) < followers * events and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    with autocommit(bench.engine) as connection:  # the API's followers get their stream's end
        store.finish_task(connection, task_id, 1, Outcome(status="succeeded"))
    for thread in threads:
        thread.join(15)
    if len(delays) < followers * events:
        raise BenchError(f"(i) {followers} followers received {len(delays)} of "
                         f"{followers * events} events; errors: {errors[:3]}")
    return delays, connect_s


def _follow_api(url: str, task_id: str, stop: threading.Event, got: Callable[[dict | None], None]) -> None:
    try:
        _read_api(url, task_id, got)
    except httpx.HTTPError as exc:
        errors.append(exc)


errors: list[Exception] = []


def _read_api(url: str, task_id: str, got: Callable[[dict | None], None]) -> None:
    with httpx.stream("GET", f"{url}/api/v1/tasks/{task_id}/stream",
                      timeout=httpx.Timeout(10, read=30)) as response:
        if response.status_code != 200:
            raise BenchError(f"(i) the stream answered {response.status_code}")
        for event in sse.parse(response.iter_lines()):
            if event.event == "event":
                got(event.data["data"])
            elif event.event == "status" and event.data["status"] == "running":
                got(None)


def _follow_redis(redis_url: str, task_id: str, stop: threading.Event,
                  got: Callable[[dict | None], None]) -> None:
    client = redis.Redis.from_url(redis_url)
    key, cursor = events_stream_key(task_id), "0"
    got(None)
    while not stop.is_set():
        for _, entries in client.xread({key: cursor}, block=500) or ():
            for entry_id, fields in entries:
                cursor = entry_id
                got(json.loads(fields[b"event"]))
    client.close()

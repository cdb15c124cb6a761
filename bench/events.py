"""(m) The record of runs at 10^7 events: ``task_events`` filled to each of
``counts.event_scales`` rows (100 events per task, the older half of them past
``retention.task_events_days``), then timed, one at a time: one task's events page through the
API (``GET /api/v1/tasks/{id}/events``, 100 events) and one retention batch (the sweep's
``delete_events_before`` of ``retention.batch_size`` rows, what each sweep does up to ten
times). The baseline of each row is the same at the smallest scale.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Integer, cast, func, insert, literal, literal_column, select, text

from bench.client import timed_gets
from bench.launch import api_server
from bench.plan import Counts
from bench.report import Row, Section, ms, percentile
from bench.servers import Bench
from bench.waiting import BenchError
from cca_core.models import Task, TaskEvent
from cca_core.settings import RetentionSettings
from cca_core.tasks import store

EVENTS_PER_TASK = 100
TARGET_RATIO = 1.5
BATCHES = 5  # retention batches timed per scale
EVENT = '{"type": "assistant", "message": {"content": [{"type": "text", "text": "a line of the run"}]}}'


def measure(bench: Bench, counts: Counts) -> Section:
    bench.reset()
    rows: list[Row] = []
    notes: list[str] = []
    first: dict[str, float] = {}
    retention = RetentionSettings()
    cutoff = datetime.now(UTC) - timedelta(days=retention.task_events_days)
    for scale in counts.event_scales:
        # Each scale filled from empty, in time order (ids grow with time, as in use: the
        # retention reads the oldest ids first).
        bench.reset()
        began = time.monotonic()
        _fill(bench, scale // EVENTS_PER_TASK)
        filled_s = time.monotonic() - began
        with api_server(bench, processes=2) as url, httpx.Client(base_url=url, timeout=60) as client:
            task_id = client.get("/api/v1/tasks?limit=1").json()["tasks"][0]["id"]
            page = percentile(timed_gets(client, f"/api/v1/tasks/{task_id}/events?limit=100",
                                         counts.scale_requests, "m"), 50)
        batch = percentile(_retention_batches(bench, cutoff, retention.batch_size), 50)
        for name, value in (("one task's events page (100)", page),
                            (f"one retention batch ({retention.batch_size} rows)", batch)):
            base = first.setdefault(name, value)
            ratio = value / base if base else 0.0
            rows.append(Row(f"(m) {name} at {scale:,} events, p50 (ms)", value, base, f"{ratio:.2f}x",
                            f"<= {TARGET_RATIO:g}x", ratio <= TARGET_RATIO))
        notes.append(f"(m) {scale:,} events filled in {filled_s:.0f} s")
    bench.reset()
    notes.append(f"(m) {EVENTS_PER_TASK} events per task, the older half past retention "
                 f"({retention.task_events_days} days); baseline: the same at "
                 f"{counts.event_scales[0]:,} events; timed: up to {BATCHES} retention batches "
                 "per scale, each deleting a whole batch")
    return Section(rows, notes)


def _fill(bench: Bench, tasks: int) -> None:
    """``tasks`` tasks with EVENTS_PER_TASK events each, in batches of 10^6 events; the older
    half of each task's events is dated past retention, and every old event has a lower id
    than every recent one."""
    template = {key: value for key, value in bench.task_values().items()
                if key not in ("status", "prompt")}
    with bench.engine.begin() as connection:
        connection.execute(insert(Task), [{**template, "status": "succeeded", "prompt": f"events {n}"}
                                          for n in range(tasks)])
        ids = connection.scalars(select(Task.id).order_by(Task.created_at.desc()).limit(tasks)).all()
    step = 1_000_000 // EVENTS_PER_TASK
    for start in range(0, len(ids), step):
        chunk = ids[start:start + step]
        series = func.generate_series(0, EVENTS_PER_TASK - 1).table_valued("n").render_derived(name="g")
        number = series.c.n
        age_days = literal_column("CASE WHEN g.n < 50 THEN 400 ELSE 1 END")
        query = (select(Task.id, literal(1), literal("assistant"), literal_column(f"'{EVENT}'::jsonb"),
                        func.now() - func.make_interval(0, 0, 0, cast(age_days, Integer), 0, 0,
                                                        cast(number, Integer)))
                 .select_from(Task).join(series, literal(True)).where(Task.id.in_(chunk))
                 .order_by(age_days.desc(), Task.id, number))  # ids grow with time, as in use
        with bench.engine.begin() as connection:
            connection.execute(insert(TaskEvent).from_select(
                ["task_id", "attempt", "type", "data", "created_at"], query))
    with bench.engine.begin() as connection:
        connection.execute(text("ANALYZE task_events"))


def _retention_batches(bench: Bench, cutoff: datetime, batch: int) -> list[float]:
    """The times of up to BATCHES retention batches that each deleted a whole batch."""
    taken = []
    for _ in range(BATCHES):
        started = time.perf_counter()
        with bench.engine.begin() as connection:
            deleted = store.delete_events_before(connection, cutoff, batch)
        if deleted < batch:
            break
        taken.append(ms(time.perf_counter() - started))
    if not taken:
        raise BenchError(f"(m) no retention batch deleted {batch} rows")
    return taken

"""(k) What the fleet's read endpoints cost as the tasks table grows: 10^3, 10^5 and 10^6
finished tasks (``counts.scale_tasks``).

The table is filled as cca's API and workers leave it (one INSERT ... SELECT over
generate_series: terminal statuses and end reasons, models, usage, run times spread out),
then the sweep's fold runs once (``cca_core.tasks.totals``: what it does every
``worker.sweep_interval_seconds``) and one API host (``cca api``, 2 processes) answers, one
request at a time: ``/api/v1/status``, ``/health``, ``/metrics``, the newest tasks page and
one task. The baseline of each row is the same request at the smallest scale: the target is
a p50 within 1.5x of it at every scale. The fold's own time is reported beside.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import (
    Integer,
    String,
    cast,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
    update,
)

from bench.client import timed_gets
from bench.launch import api_server
from bench.plan import Counts
from bench.producer import column_of
from bench.report import Row, Section, ms, percentile
from bench.servers import Bench
from bench.waiting import BenchError
from cca_core.models import Task, TaskRollup, TaskRollupMark
from cca_core.tasks import totals

TARGET_RATIO = 1.5
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PATHS = ("/api/v1/status", "/health", "/metrics", "/api/v1/tasks?limit=50", "/api/v1/tasks/{id}")
STATUS = "(ARRAY['succeeded','succeeded','succeeded','failed','cancelled','timed_out'])[1 + (g.n % 6)]"
REASON = "(ARRAY[NULL,NULL,NULL,'api_error','cancelled','timed_out'])[1 + (g.n % 6)]"
MODEL = "(ARRAY['claude-opus-4-8','claude-haiku-4-5','claude-sonnet-4-5'])[1 + (g.n % 3)]"


def measure(bench: Bench, counts: Counts) -> Section:
    bench.reset()
    rows: list[Row] = []
    notes: list[str] = []
    filled = 0
    first: dict[str, float] = {}
    for scale in counts.scale_tasks:
        began = time.monotonic()
        _fill(bench, filled, scale - filled)
        filled_s = time.monotonic() - began
        filled = scale
        began = time.monotonic()
        with bench.engine.begin() as connection:
            # The rows were written with past finish times: fold them all from scratch, as
            # the first fold after the upgrade to the rollup does.
            connection.execute(delete(TaskRollup))
            connection.execute(update(TaskRollupMark).values(finished_before=EPOCH))
            totals.fold(connection)
        fold_s = time.monotonic() - began
        scan_ms = _scan_ms(bench)
        with api_server(bench, processes=2) as url, httpx.Client(base_url=url, timeout=60) as client:
            task_id = client.get("/api/v1/tasks?limit=1").json()["tasks"][0]["id"]
            counted = sum(client.get("/api/v1/status").json()["tasks"].values())
            if counted != scale:
                raise BenchError(f"(k) /api/v1/status counts {counted} tasks of {scale}")
            for path in PATHS:
                taken = timed_gets(client, path.format(id=task_id), counts.scale_requests, "k")
                p50 = percentile(taken, 50)
                base = first.setdefault(path, p50)
                ratio = p50 / base if base else 0.0
                rows.append(Row(f"(k) {path.replace('{id}', 'ID')} at {scale:,} tasks, p50 (ms)", p50,
                                base, f"{ratio:.2f}x", f"<= {TARGET_RATIO:g}x", ratio <= TARGET_RATIO))
        notes.append(f"(k) {scale:,} tasks: filled in {filled_s:.1f} s; folding them all (as "
                     f"after the upgrade) took {fold_s * 1000:.0f} ms; counting them by status "
                     f"with a scan (what /api/v1/status did before the rollup) takes {scan_ms:.1f} ms")
    bench.reset()
    notes.append(f"(k) {counts.scale_requests} requests per path, one at a time, to one API host "
                 f"(2 gunicorn processes); baseline: the same request at {counts.scale_tasks[0]:,} tasks")
    return Section(rows, notes)


def _fill(bench: Bench, offset: int, n: int) -> None:
    """``n`` more finished tasks, numbered on from ``offset``, in batches of 100,000."""
    template = {key: value for key, value in bench.task_values().items()
                if key not in ("status", "created_at", "prompt", "model", "error_code", "started_at",
                               "finished_at", "input_tokens", "output_tokens")}
    columns = list(template)
    for start in range(offset + 1, offset + n + 1, 100_000):
        series = func.generate_series(start, min(start + 99_999, offset + n)).table_valued("n") \
            .render_derived(name="g")
        number = series.c.n
        created = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, cast(number, Integer))
        values: list[Any] = [literal(template[key], Task.__table__.c[column_of(key)].type)
                             for key in columns]
        query = select(func.gen_random_uuid(), literal_column(STATUS), literal_column(REASON),
                       literal_column(MODEL), func.concat("bench task ", cast(number, String)),
                       created, created + text("interval '1 second'"),
                       created + func.make_interval(0, 0, 0, 0, 0, 0, 1 + number % 900),
                       number % 5000, number % 700, *values).select_from(series)
        with bench.engine.begin() as connection:
            connection.execute(insert(Task).from_select(
                ["id", "status", "error_code", "model", "prompt", "created_at", "started_at",
                 "finished_at", "input_tokens", "output_tokens", *map(column_of, columns)], query))
    with bench.engine.begin() as connection:
        connection.execute(text("ANALYZE tasks"))


def _scan_ms(bench: Bench) -> float:
    """The p50 of the scan the status counts used to be (5 runs)."""
    taken = []
    with bench.engine.connect() as connection:
        for _ in range(5):
            started = time.perf_counter()
            connection.execute(select(Task.status, func.count()).group_by(Task.status)).all()
            taken.append(ms(time.perf_counter() - started))
    return percentile(taken, 50)

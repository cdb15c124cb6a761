"""(c) Tasks/s through one worker with 8 slots, each task running the stand-in to the end:
cca (``store.create_task`` + ``send_task`` as the API does, worker claims, spawns through the
reaper, supervises, records events and the outcome) vs a bare prefork worker whose task runs
``subprocess.run([stand-in])`` and pushes its completion to Redis. Both workers stay up (on
their own queues) while batches alternate."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from celery import Celery
from sqlalchemy import func, select

from bench import sections
from bench.bare import DONE_KEY, OPTIONS, RUN_STANDIN
from bench.cpu import CpuSpent, cpu_spent
from bench.launch import bare_worker, cca_worker
from bench.plan import Counts
from bench.processes import Child
from bench.producer import Producer, make_producer
from bench.report import Section, latency_row, ms, percentile, rate_row
from bench.servers import Bench
from bench.tally import Tally
from bench.waiting import BenchError, wait_until
from cca_core.models import Task

TARGET = 0.8


def measure(bench: Bench, counts: Counts) -> Section:
    """Warm both workers with two tasks per slot, alternate batches, then profile cca's
    runner in-process."""
    values = bench.task_values()
    bench.reset()
    producer = make_producer(bench.settings(max_agents=counts.slots))
    base, cca = Tally(), Tally()
    base_slots: list[float] = []
    cca_slots: list[float] = []
    try:
        with bare_worker(bench, "bare-c", concurrency=counts.slots) as app, \
                cca_worker(bench, "cca-c", max_agents=counts.slots) as worker:
            def bare(n: int, tally: Tally, slots: list[float]) -> None:
                _bare_batch(bench, app, n, tally, slots)

            def real(n: int, tally: Tally, slots: list[float]) -> None:
                _cca_batch(bench, producer, values, worker, n, tally, slots)

            for batch in (bare, real):
                batch(2 * counts.slots, Tally(), [])
            for _ in range(counts.rounds):
                bare(counts.tasks // counts.rounds, base, base_slots)
                real(counts.tasks // counts.rounds, cca, cca_slots)
    finally:
        producer.close()
    bench.reset()
    profile = sections.profile(bench, values, counts.profile_tasks)
    bench.reset()
    return Section([
        rate_row(f"(c) tasks/s (max_agents={counts.slots})", cca.rate, base.rate, TARGET),
        latency_row("(c) CPU ms per task", cca.cpu_ms, base.cpu_ms),
        latency_row("(c) time in slot p50 ms", ms(percentile(cca_slots, 50)),
                    ms(percentile(base_slots, 50))),
    ], [
        f"(c) {counts.tasks} tasks each in {counts.rounds} alternating batches after "
        f"{2 * counts.slots} warm-up; cca submitted with store.create_task + send_task (the "
        f"API's row and message, no HTTP), done = row succeeded, time in slot = claim → "
        f"finish; baseline done = RPUSH at the end of the bare task.",
        *profile,
    ])


def _bare_batch(bench: Bench, app: Celery, n: int, tally: Tally, slots: list[float]) -> None:
    bench.redis.delete(DONE_KEY)
    task = app.tasks[RUN_STANDIN]
    with cpu_spent(bench.cpu_roots) as cpu:
        before = time.time()
        for _ in range(n):
            task.apply_async(args=[uuid.uuid4().hex], **OPTIONS)
        wait_until(lambda: bench.redis.llen(DONE_KEY) >= n, timeout_s=_timeout(n),
                   what=f"{n} baseline tasks", interval_s=0.02)
    spans = [tuple(map(float, raw.split())) for raw in bench.redis.lrange(DONE_KEY, 0, -1)]
    _add(tally, n, max(end for _, end in spans) - before, cpu)
    slots.extend(end - start for start, end in spans)


def _cca_batch(bench: Bench, producer: Producer, values: dict[str, Any], worker: Child, n: int,
               tally: Tally, slots: list[float]) -> None:
    with cpu_spent(bench.cpu_roots) as cpu:
        before = time.time()
        ids = [producer.create(values) for _ in range(n)]
        wait_until(_all_succeeded(bench, ids), timeout_s=_timeout(n), what=f"{n} cca tasks",
                   child=worker, interval_s=0.02)
    with bench.engine.connect() as connection:
        rows = connection.execute(select(Task.started_at, Task.finished_at)
                                  .where(Task.id.in_(ids))).all()
    _add(tally, n, max(row.finished_at for row in rows).timestamp() - before, cpu)
    slots.extend((row.finished_at - row.started_at).total_seconds() for row in rows)


def _all_succeeded(bench: Bench, ids: list[str]) -> Callable[[], bool]:
    """A check that is True once every task succeeded; raises BenchError if one did not."""
    def check() -> bool:
        with bench.engine.connect() as connection:
            counts = dict(connection.execute(
                select(Task.status, func.count()).where(Task.id.in_(ids))
                .group_by(Task.status)).all())
        failed = {status: count for status, count in counts.items()
                  if status not in ("queued", "running", "succeeded")}
        if failed:
            raise BenchError(f"cca tasks ended other than succeeded: {failed}")
        return counts.get("succeeded", 0) == len(ids)
    return check


def _add(tally: Tally, n: int, elapsed: float, cpu: CpuSpent) -> None:
    print(f"  {n} in {elapsed:.2f}s", file=sys.stderr)
    tally.add(n, elapsed, cpu)


def _timeout(n: int) -> float:
    return max(60.0, n * 0.5)

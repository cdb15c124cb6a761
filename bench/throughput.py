"""(c) Tasks/s through one worker with 8 slots, each task running the stand-in to the end:
cca (``store.create_task`` + ``send_task`` as the API does, worker claims, spawns through the
reaper, supervises, records events and the outcome) vs a bare prefork worker whose task runs
``subprocess.run([stand-in])`` and pushes its completion to Redis. Both workers stay up (on
their own queues) while batches alternate. Measured twice: with a stand-in that answers at
once and with one that waits for a model turn."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy import func, select

from bench import sections
from bench.bare import DONE_KEY, OPTIONS, RUN_STANDIN, done_spans
from bench.cpu import CpuSpent, cpu_spent
from bench.floor import writes_cpu_ms
from bench.launch import bare_worker, cca_worker
from bench.plan import Counts
from bench.processes import Child
from bench.producer import Producer, make_producer
from bench.report import Section, latency_row, ms, percentile, rate_row
from bench.servers import TURN_S, Bench
from bench.tally import Tally
from bench.waiting import BenchError, wait_until
from cca_core.models import Task

# The target is on the model turn: a real run waits for the model, and that is what users
# feel. The instant variant is a diagnostic of CPU bookkeeping without a target: on two cores
# the writes every task needs cap it near 0.75 (its notes print the cap measured).
TURN_TARGET = 0.9
# How often each side checks whether its batch is done. The rate comes from the tasks' own
# start and end times, not from this; checking often only takes CPU from the workers (cca's
# check is a Postgres query, the baseline's an LLEN).
DONE_POLL_S = 0.1


@dataclass
class Comparison:
    """Both sides' tallies, and each task's time in its slot, for one stand-in."""

    cca: Tally = field(default_factory=Tally)
    base: Tally = field(default_factory=Tally)
    cca_slots: list[float] = field(default_factory=list)
    base_slots: list[float] = field(default_factory=list)


def measure(bench: Bench, counts: Counts) -> Section:
    """Compare with the stand-in answering at once, then with it answering after a model
    turn; then profile cca's runner in-process."""
    values = bench.task_values()
    at_once = _compare(bench, counts, values, bench.standin, "c")
    after_turn = _compare(bench, counts, values, bench.standin_turn, "c-turn")
    bench.reset()
    profile = sections.profile(bench, values, counts.profile_tasks)
    bench.reset()
    writes = writes_cpu_ms(bench, values, counts.floor_tasks)
    bench.reset()
    base = at_once.base.cpu_ms
    turn = f"turn {TURN_S * 1000:g} ms"
    return Section([
        rate_row(f"(c) tasks/s (max_agents={counts.slots}), instant", at_once.cca.rate,
                 at_once.base.rate),
        latency_row("(c) CPU ms per task, instant", at_once.cca.cpu_ms, at_once.base.cpu_ms),
        latency_row("(c) time in slot p50 ms, instant", ms(percentile(at_once.cca_slots, 50)),
                    ms(percentile(at_once.base_slots, 50))),
        rate_row(f"(c) tasks/s (max_agents={counts.slots}), {turn}", after_turn.cca.rate,
                 after_turn.base.rate, TURN_TARGET),
        latency_row(f"(c) CPU ms per task, {turn}", after_turn.cca.cpu_ms,
                    after_turn.base.cpu_ms),
        latency_row(f"(c) time in slot p50 ms, {turn}", ms(percentile(after_turn.cca_slots, 50)),
                    ms(percentile(after_turn.base_slots, 50))),
    ], [
        f"(c) {counts.tasks} tasks each in {counts.rounds} alternating batches after "
        f"{2 * counts.slots} warm-up, once with the stand-in answering at once ('instant': "
        f"the fleet's own cost per task against Celery's, all of it CPU on this machine) and "
        f"once with it waiting {TURN_S * 1000:g} ms between its two events as claude waits "
        f"for the model ('{turn}', still far shorter than any real run); cca submitted with "
        f"store.create_task + send_task (the API's row and message, no HTTP), done = row "
        f"succeeded, time in slot = claim → finish; baseline done = RPUSH at the end of the "
        f"bare task.",
        f"(c) the writes every task needs (INSERT, claim, finish with the run's events, XADD), "
        f"made alone back to back with cca's statements: {writes:.2f} ms of CPU per task "
        f"(Postgres and Redis included). Added to the baseline's {base:.1f} ms, no fleet "
        f"making them reaches more than {base / (base + writes):.2f} instant here.",
        *profile,
    ])


def _compare(bench: Bench, counts: Counts, values: dict[str, Any], standin: Path,
             name: str) -> Comparison:
    """Warm both workers (running ``standin``) with two tasks per slot, then alternate
    batches."""
    bench.reset()
    producer = make_producer(bench.settings(max_agents=counts.slots))
    found = Comparison()
    try:
        with bare_worker(bench, f"bare-{name}", concurrency=counts.slots,
                         standin=standin) as app, \
                cca_worker(bench, f"cca-{name}", max_agents=counts.slots,
                           standin=standin) as worker:
            def bare(n: int, tally: Tally, slots: list[float]) -> None:
                _bare_batch(bench, app, n, tally, slots)

            def real(n: int, tally: Tally, slots: list[float]) -> None:
                _cca_batch(bench, producer, values, worker, n, tally, slots)

            for batch in (bare, real):
                batch(2 * counts.slots, Tally(), [])
            for _ in range(counts.rounds):
                bare(counts.tasks // counts.rounds, found.base, found.base_slots)
                real(counts.tasks // counts.rounds, found.cca, found.cca_slots)
    finally:
        producer.close()
    return found


def _bare_batch(bench: Bench, app: Celery, n: int, tally: Tally, slots: list[float]) -> None:
    bench.redis.delete(DONE_KEY)
    task = app.tasks[RUN_STANDIN]
    with cpu_spent(bench.cpu_roots) as cpu:
        before = time.time()
        for _ in range(n):
            task.apply_async(args=[uuid.uuid4().hex], **OPTIONS)
        wait_until(lambda: bench.redis.llen(DONE_KEY) >= n, timeout_s=_timeout(n),
                   what=f"{n} baseline tasks", interval_s=DONE_POLL_S)
    spans = done_spans(bench.redis)
    _add(tally, n, max(span.end for span in spans) - before, cpu)
    slots.extend(span.end - span.start for span in spans)


def _cca_batch(bench: Bench, producer: Producer, values: dict[str, Any], worker: Child, n: int,
               tally: Tally, slots: list[float]) -> None:
    with cpu_spent(bench.cpu_roots) as cpu:
        before = time.time()
        ids = [producer.create(values) for _ in range(n)]
        wait_until(_all_succeeded(bench, ids), timeout_s=_timeout(n), what=f"{n} cca tasks",
                   child=worker, interval_s=DONE_POLL_S)
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

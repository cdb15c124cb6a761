"""Where one cca task's time goes inside the worker: runs tasks through
``cca_worker.runner.run_task`` in this process, one at a time on an idle machine, with
timers wrapped around the runner's steps (the production code is not changed; the wrappers
are removed afterwards)."""

from __future__ import annotations

import resource
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import redis

from bench.report import ms, percentile
from bench.servers import Bench
from bench.waiting import BenchError
from cca_core.infra.db import autocommit, make_engine
from cca_core.tasks import store
from cca_worker import runner
from cca_worker.events import EventSink

# (owner, attribute, label, is a context manager); nested steps are indented in the label.
STEPS: list[tuple[Any, str, str, bool]] = [
    (runner, "autocommit", "claim (Postgres)", True),
    (runner, "resolve_spec", "resolve_spec", False),
    (runner, "prepare_workdir", "prepare_workdir (mkdir)", False),
    (runner, "build_env", "build_env", False),
    (runner, "_config_dir", "per-slot CLAUDE_CONFIG_DIR (mkdir)", False),
    (runner, "spawn", "spawn (request to the shim)", False),
    (runner, "supervise", "supervise (shim + stand-in run, read loop)", False),
    (EventSink, "flush", "  of which: events written during the run", False),
    (runner.spending, "for_run", "spending.for_run (Postgres: the key's quota)", False),
    (runner, "decide", "decide", False),
    (runner, "_finish", "finish: last events + outcome (Postgres), XADD", False),
    (EventSink, "publish", "  of which: events XADD (Redis)", False),
]
TOTAL, CPU = "total", "cpu"


def profile(bench: Bench, values: dict[str, Any], n: int) -> list[str]:
    """Run ``n`` tasks (after one warm-up); return report lines: medians per task (ms)."""
    settings = bench.settings()
    engine = make_engine(bench.postgres_url, pool_size=2, max_overflow=2)
    ctx = runner.WorkerContext(settings=settings, hostname="profile@bench", slot=0,
                               engine=engine,
                               redis=redis.Redis.from_url(bench.redis_url))
    current: dict[str, float] = defaultdict(float)
    try:
        _run(ctx, values)
        with _timers(current):
            samples = _run_many(ctx, values, n, current)
    finally:
        engine.dispose()
    lines = [f"(c) one task inside the worker (run_task in this process, no worker running), "
             f"median of {n} (ms):",
             f"      run_task total                                "
             f"{ms(percentile(samples[TOTAL], 50)):7.1f}   (CPU incl. children "
             f"{ms(percentile(samples[CPU], 50)):.1f})"]
    lines += [f"      {label:<46}{ms(percentile(samples[label], 50)):7.1f}"
              for owner, name, label, _ in STEPS if hasattr(owner, name)]
    return lines


def _run_many(ctx: runner.WorkerContext, values: dict[str, Any], n: int,
              current: dict[str, float]) -> dict[str, list[float]]:
    """Per label, one duration per task (0 if the step did not run)."""
    samples: dict[str, list[float]] = defaultdict(list)
    for _ in range(n):
        task_id = _create(ctx, values)
        current.clear()
        cpu_before = _cpu()
        before = time.perf_counter()
        status = runner.run_task(ctx, task_id)
        current[TOTAL] = time.perf_counter() - before
        current[CPU] = _cpu() - cpu_before
        if status != "succeeded":
            raise BenchError(f"profiled task {task_id} ended {status}")
        for label in [TOTAL, CPU, *(step[2] for step in STEPS)]:
            samples[label].append(current.get(label, 0.0))
    return samples


def _run(ctx: runner.WorkerContext, values: dict[str, Any]) -> None:
    runner.run_task(ctx, _create(ctx, values))


def _create(ctx: runner.WorkerContext, values: dict[str, Any]) -> str:
    with autocommit(ctx.engine) as connection:
        task, _ = store.create_task(connection, values)
    return str(task.id)


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextmanager
def _timers(totals: dict[str, float]) -> Iterator[None]:
    """Wrap every step (that the runner still has) with a timer adding to ``totals[label]``;
    unwrap on exit."""
    with ExitStack() as stack:
        for owner, name, label, is_cm in STEPS:
            original = getattr(owner, name, None)
            if original is None:
                continue
            wrapper = _time_cm(original, totals, label) if is_cm else _time_call(original,
                                                                                totals, label)
            setattr(owner, name, wrapper)
            stack.callback(setattr, owner, name, original)
        yield


def _time_call(fn: Callable[..., Any], totals: dict[str, float], label: str) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        before = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[label] += time.perf_counter() - before
    return timed


def _time_cm(fn: Callable[..., Any], totals: dict[str, float], label: str) -> Callable[..., Any]:
    @contextmanager
    def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
        before = time.perf_counter()
        try:
            with fn(*args, **kwargs) as value:
                yield value
        finally:
            totals[label] += time.perf_counter() - before
    return timed

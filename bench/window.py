"""(h) From a usage window's reset to the first parked task running, with the real `claude`.

One credential, lent by a worker of two slots (cca's defaults otherwise: a 10 s sweep, a 60 s
lease) to tasks that each make two model requests, against the scripted Messages API of
``tests/`` closing the key's usage window after its first few requests for ``WINDOW_S``
seconds, longer than ``agents.window_wait_seconds``: the runs it turns away end, their tasks
and the ones not yet started wait ``queued`` for the reset (``waiting_for: usage_window``).
Measured: the reset to the first and the last parked task running again (their attempts'
start). The baseline is what blind retries give (computed, no jitter): a turned-away run
retried by the default ``rate_limited`` policy (60 s, doubling) with no reset known runs
again at the first retry after the reset.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bench.launch import cca_worker
from bench.plan import Counts
from bench.producer import make_producer
from bench.realruns import claude_path
from bench.report import Row, Section
from bench.servers import Bench
from bench.waiting import BenchError, wait_until
from cca_core.models import Task, TaskAttempt
from cca_core.retries import DEFAULTS, Failure, retry_at
from tests.fakes.model_api import KeyLimits, ModelAPI, Window

SLOTS, TASKS, WINDOW_S, OPEN_REQUESTS = 2, 4, 20, 3
TARGET_S = 60


def measure(bench: Bench, counts: Counts) -> Section:
    bench.reset()
    limits = {"bench-key": KeyLimits(window=Window(after_requests=OPEN_REQUESTS, seconds=WINDOW_S))}
    with ModelAPI(keys=limits) as model:
        sections = {"credentials": {"main": {"api_key": "bench-key", "base_url": model.url}},
                    "agents": {"window_wait_seconds": 0}}
        producer = make_producer(bench.settings())
        try:
            with cca_worker(bench, "h", SLOTS, standin=claude_path(),
                            agent_env={"CLAUDE_CODE_MAX_RETRIES": "0"}, sections=sections):
                values = bench.task_values()
                ids = [producer.create({**values, "prompt": _prompt(n)}) for n in range(TASKS)]
                _wait_done(bench, ids)
        finally:
            producer.close()
        reset = datetime.fromtimestamp(model.window_resets["bench-key"], UTC)
    starts = _restarts(bench, ids, reset)
    bench.reset()
    first, last = starts[0], starts[-1]
    blind = _blind_retry_delay(reset - timedelta(seconds=WINDOW_S), reset)
    return Section([
        Row("(h) usage-window reset -> first parked task running (s)", first, blind,
            f"{first / blind:.2f}x", f"<= {TARGET_S}", first <= TARGET_S),
        Row("(h) usage-window reset -> last parked task running (s)", last, blind,
            f"{last / blind:.2f}x", f"<= {TARGET_S}", last <= TARGET_S),
    ], [
        f"(h) {TASKS} tasks of two requests each on {SLOTS} slots and one credential whose window "
        f"closes after {OPEN_REQUESTS} requests for {WINDOW_S} s: {len(starts)} tasks waited for "
        f"the reset and ran {', '.join(f'{s:.1f}' for s in starts)} s after it (each worker "
        f"looks at its credentials' windows every second and sends the waiting tasks when one "
        f"resets; the 10 s sweep is the fallback). Baseline: a blind "
        f"retry by the default rate_limited policy (first retry 60 s after the 429) runs "
        f"{blind:.1f} s after the reset, if its attempts last."])


def _prompt(n: int) -> str:
    steps = [{"tool_use": {"name": "Bash", "input": {"command": "git --version"}}},
             *[{"text": f"done {n}"}] * 3]
    return f"[[script:{json.dumps({'steps': steps})}]] window task {n}"


def _wait_done(bench: Bench, ids: list[str]) -> None:
    def done() -> bool:
        with bench.engine.connect() as connection:
            statuses = connection.scalars(select(Task.status).where(Task.id.in_(ids))).all()
        if any(status not in ("queued", "running", "succeeded") for status in statuses):
            raise BenchError(f"(h) a task did not succeed: {statuses}")
        return all(status == "succeeded" for status in statuses)

    wait_until(done, timeout_s=WINDOW_S + 180, what="(h) the tasks", interval_s=0.5)


def _restarts(bench: Bench, ids: list[str], reset: datetime) -> list[float]:
    """Seconds from the reset to each parked task's first run after it."""
    with bench.engine.connect() as connection:
        rows = connection.execute(select(TaskAttempt.task_id, TaskAttempt.started_at)
                                  .where(TaskAttempt.task_id.in_(ids))).all()
    starts: dict[str, float] = {}
    for task_id, started_at in rows:
        late = (started_at - reset).total_seconds()
        if late >= -0.5:  # a run that began with the window open is not a parked task's
            starts[str(task_id)] = min(starts.get(str(task_id), late), late)
    if not starts:
        raise BenchError("(h) no task waited for the window's reset")
    return sorted(max(0.0, late) for late in starts.values())


def _blind_retry_delay(refused_at: datetime, reset: datetime) -> float:
    """How long after ``reset`` a run refused at ``refused_at`` is retried by the default
    policy when nothing tells it the reset."""
    rule, attempt, when = DEFAULTS[Failure.RATE_LIMITED], 1, refused_at
    while (due := retry_at(rule, attempt, when, jitter=0)) is not None:
        if due >= reset:
            return (due - reset).total_seconds()
        attempt, when = attempt + 1, due
    raise BenchError("(h) the default policy gives up before the reset")

"""(b) Latency from submit to the start of ``claude``, one task at a time: cca (POST over
HTTP → API → Redis → worker → claim → reaper shim → stand-in) vs bare ``apply_async`` to the
start of a Celery task. Also what starting the stand-in alone costs, directly and through
cca's reaper shim, and where cca's median goes, from the task row's timestamps."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass

from celery import Celery
from sqlalchemy import select

from bench import standin
from bench.bare import OPTIONS, RECORD_START
from bench.client import post_task
from bench.launch import api_server, bare_worker, cca_worker
from bench.plan import Counts
from bench.processes import Child
from bench.report import Section, latency_row, ms, percentile
from bench.servers import Bench
from bench.waiting import BenchError, wait_until
from cca_core.models import Task
from cca_core.tasks.status import TERMINAL_STATUSES

SLOTS = 2
TIMEOUT_S = 30.0
FACTOR, SLACK_MS = 2.0, 5.0


@dataclass(frozen=True)
class CcaSample:
    """Wall-clock times (``time.time()``, seconds) of one task's way to its agent."""

    submitted: float  # just before the POST
    answered: float   # the 202 received
    inserted: float   # tasks.created_at: the INSERT's transaction began
    claimed: float    # tasks.started_at: the worker's claim began
    started: float    # the stand-in's own first statement

    @property
    def latency(self) -> float:
        return self.started - self.submitted


def measure(bench: Bench, counts: Counts) -> Section:
    """With both workers and the API up (idle but for the task at hand), one at a time and
    in turn: a baseline task, a cca task, a spawn of the stand-in through cca's reaper shim
    and a direct spawn of it."""
    bench.reset()
    base: list[float] = []
    samples: list[CcaSample] = []
    reaper: list[float] = []
    direct: list[float] = []
    spawns = bench.root / "spawn"
    starts = standin.Starts(bench.root / "starts")
    agent_env = {"BENCH_STARTS": str(starts.path)}
    with closing(starts), bare_worker(bench, "bare-b", concurrency=SLOTS) as app, \
            api_server(bench) as url, \
            cca_worker(bench, "cca-b", max_agents=SLOTS, agent_env=agent_env) as worker:
        _warm_slots(bench, url, worker)
        for index in range(counts.latency_warmup + counts.latency_samples):
            base.append(_bare_once(bench, app, index))
            samples.append(_cca_once(bench, url, worker, starts))
            reaper.append(standin.start_latency_reaper(bench.standin, spawns / f"r{index}"))
            direct.append(standin.start_latency_direct(bench.standin, spawns / f"d{index}"))
    bench.reset()
    warm = counts.latency_warmup
    base, samples, reaper, direct = base[warm:], samples[warm:], reaper[warm:], direct[warm:]
    cca = [sample.latency for sample in samples]
    cca_p50, base_p50 = ms(percentile(cca, 50)), ms(percentile(base, 50))
    return Section(
        rows=[
            latency_row("(b) latency p50 ms", cca_p50, base_p50, FACTOR, SLACK_MS),
            latency_row("(b) latency p99 ms", ms(percentile(cca, 99)), ms(percentile(base, 99))),
            latency_row("(b) p50 minus the stand-in's own start", cca_p50 - ms(
                percentile(direct, 50)), base_p50, FACTOR, SLACK_MS),
            latency_row("(b) spawn p50 ms: reaper shim vs direct", ms(percentile(reaper, 50)),
                        ms(percentile(direct, 50))),
        ],
        notes=_notes(samples, reaper, direct, counts),
    )


def _bare_once(bench: Bench, app: Celery, index: int) -> float:
    """``apply_async`` → the task's recorded start (BLPOP: the benchmark waits idle)."""
    key = f"bench:latency:{index}"
    before = time.time()
    app.tasks[RECORD_START].apply_async(args=[key], **OPTIONS)
    popped = bench.redis.blpop([key], timeout=int(TIMEOUT_S))
    if popped is None:
        raise BenchError(f"the baseline task {index} did not start within {TIMEOUT_S:g}s")
    return float(popped[1]) - before


def _warm_slots(bench: Bench, url: str, worker: Child) -> None:
    """Run one task in each pool process of the cca worker (they build their connections on
    the first task), by submitting as many tasks at once as there are slots."""
    warm = [post_task(url, TIMEOUT_S) for _ in range(SLOTS)]
    wait_until(lambda: all(_finished(bench, task_id) for task_id in warm), timeout_s=TIMEOUT_S,
               what="the warm-up tasks", child=worker)


def _cca_once(bench: Bench, url: str, worker: Child, starts: standin.Starts) -> CcaSample:
    """POST a task, wait for its stand-in to start, then for its row to succeed."""
    submitted = time.time()
    task_id = post_task(url, TIMEOUT_S)
    answered = time.time()
    try:
        started = starts.wait(bench.cca_workspace / task_id, TIMEOUT_S)
    except BenchError as exc:
        raise BenchError(f"{exc}; {worker.name} log:\n{worker.log_tail()}") from None
    row = wait_until(lambda: _finished(bench, task_id), timeout_s=TIMEOUT_S,
                     what=f"task {task_id} to finish", child=worker, interval_s=0.002)
    return CcaSample(submitted, answered, row.inserted, row.claimed, started)


@dataclass(frozen=True)
class Succeeded:
    inserted: float
    claimed: float


def _finished(bench: Bench, task_id: str) -> Succeeded | None:
    """The task's timestamps once it succeeded, None before it ended; raises BenchError if
    it ended otherwise."""
    with bench.engine.connect() as connection:
        row = connection.execute(
            select(Task.status, Task.error_message, Task.created_at, Task.started_at)
            .where(Task.id == task_id)).one()
    if row.status not in TERMINAL_STATUSES:
        return None
    if row.status != "succeeded" or row.started_at is None:
        raise BenchError(f"task {task_id} ended {row.status}: {row.error_message}")
    return Succeeded(row.created_at.timestamp(), row.started_at.timestamp())


def _notes(samples: Sequence[CcaSample], reaper: list[float], direct: list[float],
           counts: Counts) -> list[str]:
    def p50(phase: Callable[[CcaSample], float]) -> float:
        return ms(percentile([phase(sample) for sample in samples], 50))

    return [
        f"(b) {counts.latency_samples} tasks each, one at a time, baseline and cca alternating "
        f"(after {counts.latency_warmup} warm-up), both workers -c {SLOTS}; cca: POST "
        f"(http.client, a new connection) → the stand-in's recorded start, next POST once "
        f"the row succeeded; baseline: apply_async → the bare task's recorded start (BLPOP). "
        f"The benchmark waits for the stand-in's start on a FIFO, as idle as BLPOP. Spawn, "
        f"in turn with "
        f"those, from this process: cca_worker.agent.spawn (reaper shim) vs subprocess.run "
        f"of the stand-in; 'minus the stand-in's own start' subtracts the direct spawn p50.",
        "(b) where cca's time goes, median of each phase (ms; the phases need not add up):",
        f"      POST → INSERT begins (HTTP, gunicorn, Flask, validation)  {p50(_to_insert):7.1f}",
        f"      INSERT → claim begins (commit, send_task, Redis, worker)  {p50(_to_claim):7.1f}",
        f"      claim → stand-in runs (claim commit, spec, dirs, spawn)   {p50(_to_start):7.1f}",
        f"        of which: spawn through the reaper shim, alone           "
        f"{ms(percentile(reaper, 50)):7.1f}",
        f"        of which: the stand-in's own interpreter start, alone    "
        f"{ms(percentile(direct, 50)):7.1f}",
        f"      POST → 202 received                                       {p50(_answer):7.1f}",
    ]


def _to_insert(sample: CcaSample) -> float:
    return sample.inserted - sample.submitted


def _to_claim(sample: CcaSample) -> float:
    return sample.claimed - sample.inserted


def _to_start(sample: CcaSample) -> float:
    return sample.started - sample.claimed


def _answer(sample: CcaSample) -> float:
    return sample.answered - sample.submitted

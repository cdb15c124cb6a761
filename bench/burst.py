"""(l) A burst of submissions, drained: ``counts.burst_tasks`` tasks POSTed at once (8 client
threads) to one API host (``cca api``, 2 processes) while one worker of SLOTS slots runs them
with a stand-in whose run takes TURN_S and leaves a background process behind.

First a tenth of them, drained, then the rest. Reported: answers other than 202 (none may be
a 5xx), the share of slot time busy while tasks waited (sampled every 0.2 s from the task
table), the memory (PSS) of the API's and the worker's processes after the rest against
after the first tenth (within 10%), and the agents' background processes left (none).

The target is on the slot use with agents' runs of REAL_RUN_FLOOR_S, computed from the burst's
measured hand-offs (see below); the 0.2 s runs' sampled slot use is a diagnostic.

The slot use's baseline is a bare Celery pool of SLOTS processes (``bench.bare``, cca's Celery
settings) running the same stand-in for the same tasks, sent straight to Redis: Celery's own
hand-off between two runs, with nothing of cca's around it (no API, no Postgres, no memory).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from sqlalchemy import func, select

from bench.bare import DONE_KEY, OPTIONS, RUN_STANDIN, done_spans
from bench.config import BODY
from bench.faults import ORPHAN, STANDIN, count_orphans, kill_orphans
from bench.launch import api_server, bare_worker, cca_worker
from bench.parallel import Job, run_parallel
from bench.plan import Counts
from bench.processes import Child
from bench.report import Row, Section, percentile
from bench.servers import Bench
from bench.waiting import wait_until
from cca_core.models import Task

SLOTS = 8
TURN_S = 0.2
# The target is on a real run: what a slot loses is its hand-off from one run to the next,
# whatever the run's length, and a real claude run takes at least its start, about 0.8 s
# (../shared/notes), before its first model turn of seconds. The stand-in's 0.2 s runs (40
# hand-offs a second on two cores shared with the API's burst) make the hand-off visible: their
# slot use is a diagnostic beside the bare pool's.
REAL_RUN_FLOOR_S = 0.8
THREADS = 8
BUSY_TARGET = 0.95
MEMORY_TARGET = 1.10
_PAYLOAD = json.dumps(BODY).encode()


def measure(bench: Bench, counts: Counts) -> Section:
    bench.reset()
    standin = _write_standin(bench.root / "claude-burst-standin", linger=600)
    statuses: Counter[int] = Counter()
    first = counts.burst_tasks // 10
    with api_server(bench, processes=2) as url, \
            cca_worker(bench, "burst", SLOTS, standin=standin) as worker:
        api = bench.children.named("api")
        _burst(url, first, statuses)
        _drain(bench, first)
        memory_first = (_memory_kb(api), _memory_kb(worker))
        with _sampling(bench) as busy:
            rest_sent = time.time()
            _burst(url, counts.burst_tasks - first, statuses)
            accepted = time.time()
            _drain(bench, counts.burst_tasks)
        memory_rest = (_memory_kb(api), _memory_kb(worker))
    slots = _cca_slots(bench, rest_sent)
    time.sleep(2)
    orphans = count_orphans()
    kill_orphans()
    bench.reset()
    # The bare pool has no reaper: its stand-in's background process ends by itself.
    base_use, base_slots = _bare_run(bench, _write_standin(bench.root / "bare-burst-standin", linger=TURN_S),
                                    counts.burst_tasks)
    bench.reset()
    errors = sum(count for status, count in statuses.items() if status >= 500)
    use, use_unloaded = _mean_use(busy), _mean_use([(at, n) for at, n in busy if at > accepted])
    real_use, base_real_use = slots.use_with(REAL_RUN_FLOOR_S), base_slots.use_with(REAL_RUN_FLOOR_S)
    rows = [
        Row(f"(l) 5xx answers to {counts.burst_tasks:,} submissions", errors, 0, "-", "0", errors == 0),
        Row(f"(l) slot use while tasks waited, {TURN_S:g} s runs (%)", use * 100, base_use * 100,
            f"{use / base_use:.2f}"),
        Row(f"(l) slot use with {REAL_RUN_FLOOR_S:g} s runs, from the hand-offs (%)", real_use * 100,
            base_real_use * 100, f"{real_use / base_real_use:.2f}" if base_real_use else "-",
            f">= {BUSY_TARGET:.0%}", real_use >= BUSY_TARGET),
        Row("(l) agent background processes left", orphans, 0, "-", "0", orphans == 0),
    ]
    for name, after, before in (("API", memory_rest[0], memory_first[0]),
                                ("worker", memory_rest[1], memory_first[1])):
        ratio = after / before if before else 0.0
        rows.append(Row(f"(l) {name} memory (PSS) after {counts.burst_tasks:,} tasks (MiB)",
                        after / 1024, before / 1024, f"{ratio:.2f}x", f"<= {MEMORY_TARGET:.2f}x",
                        ratio <= MEMORY_TARGET))
    other = {status: count for status, count in statuses.items() if status != 202}
    return Section(rows, [
        f"(l) {counts.burst_tasks:,} submissions from {THREADS} threads ({first:,} first, drained, "
        f"then the rest at once) to one API host (2 gunicorn processes); one worker of {SLOTS} "
        f"slots, stand-in runs of {TURN_S:g} s; answers other than 202: {other or 'none'}; "
        f"baseline of the memory rows: after the first {first:,}",
        f"(l) cca's slot use after the last submission was accepted (no API load left): "
        f"{use_unloaded:.1%}; the baseline of the slot use: a bare Celery pool of {SLOTS} running the "
        f"same stand-in for the same tasks, sent straight to Redis",
        f"(l) a slot's hand-off while tasks waited (one run's end to the slot's next start; "
        f"cca's: its finish written to its next claim), mean, p50 / p95 / max: cca {slots.spread()}, "
        f"bare pool {base_slots.spread()}; a run's time in its slot beyond the stand-in's {TURN_S:g} s "
        f"(cca: claim, recall, the reaper shim's start, finish write; bare: the stand-in's start): "
        f"cca {slots.around_s * 1000:.0f} ms, bare {base_slots.around_s * 1000:.0f} ms",
        f"(l) a slot's use with agents' runs of r seconds: (r + that time) / (r + that time + the "
        f"mean hand-off), as measured in the burst; with r = {TURN_S:g} it gives "
        f"{slots.use_with(TURN_S):.1%} against the {use:.1%} sampled"])


def _burst(url: str, n: int, statuses: Counter[int]) -> None:
    """POST ``n`` tasks from THREADS threads, counting the answers by status."""
    lock = threading.Lock()

    @contextmanager
    def client() -> Iterator[Job]:
        def post() -> None:
            status = _post(url)
            with lock:
                statuses[status] += 1
        yield post

    run_parallel(n, THREADS, client)


def _post(base_url: str) -> int:
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)
    try:
        connection.request("POST", "/api/v1/tasks", _PAYLOAD, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _drain(bench: Bench, total: int) -> None:
    """Wait until ``total`` tasks have ended."""
    def ended() -> bool | None:
        with bench.engine.connect() as connection:
            done = connection.scalar(select(func.count()).where(Task.status.not_in(("queued", "running"))))
        return True if (done or 0) >= total else None

    wait_until(ended, timeout_s=1800, what=f"{total} tasks to end", interval_s=0.5)


def _write_standin(path: Path, linger: float) -> Path:
    path.write_text(STANDIN.format(orphan=ORPHAN, linger=f"{linger:g}", turn=f"{TURN_S:g}"))
    path.chmod(0o755)
    return path


def _bare_run(bench: Bench, standin: Path, total: int) -> tuple[float, _Slots]:
    """The bare pool's share of slot time busy from sending the rest of ``total`` tasks (a
    tenth first, drained, as cca's) until the last of them started, and its slots (their
    hand-offs once all were sent)."""
    first = total // 10
    with bare_worker(bench, "burst-bare", SLOTS, standin=standin) as app:
        task = app.tasks[RUN_STANDIN]
        for n in (first, total - first):
            bench.redis.delete(DONE_KEY)
            sent = time.time()
            for _ in range(n):
                task.apply_async(args=[uuid.uuid4().hex], **OPTIONS)
            all_sent = time.time()
            wait_until(_all_done(bench, n), timeout_s=1800, what=f"{n} baseline tasks",
                       interval_s=0.5)
    spans = done_spans(bench.redis)
    last_start = max(span.start for span in spans)
    busy = sum(max(0.0, min(span.end, last_start) - max(span.start, sent)) for span in spans)
    slots = _Slots.of([_Run(span.pid, span.start, span.end, all_sent) for span in spans])
    return busy / (SLOTS * (last_start - sent)), slots


class _Run(NamedTuple):
    """One run of a slot: its slot (pool process), when it started and ended, and when its
    task was there to take (at the latest)."""

    slot: int
    start: float
    end: float
    ready: float


@dataclass(frozen=True)
class _Slots:
    """How a pool's slots spent the burst: each run's time in its slot (the stand-in's
    TURN_S and what is done around it), and each slot's hand-offs from one run's end to its
    next run's start, when that next task was there to take before the run ended."""

    runs: list[float]
    handoffs: list[float]

    @classmethod
    def of(cls, runs: list[_Run]) -> _Slots:
        ordered = sorted(runs)
        return cls([run.end - run.start for run in ordered],
                   [after.start - before.end for before, after in zip(ordered, ordered[1:], strict=False)
                    if before.slot == after.slot and after.ready < before.end])

    @property
    def around_s(self) -> float:
        """The mean time of a run in its slot beyond the stand-in's own."""
        return sum(self.runs) / len(self.runs) - TURN_S if self.runs else 0.0

    def use_with(self, agent_s: float) -> float:
        """A slot's use were each agent's run ``agent_s`` seconds long: what is done around
        it and the hand-offs stay as measured."""
        if not self.handoffs:
            return 0.0
        busy = agent_s + self.around_s
        return busy / (busy + sum(self.handoffs) / len(self.handoffs))

    def spread(self) -> str:
        if not self.handoffs:
            return "none measured"
        gaps = self.handoffs
        spread = " / ".join(f"{percentile(gaps, q) * 1000:.1f}" for q in (50, 95, 100))
        return f"{sum(gaps) / len(gaps) * 1000:.1f}, {spread} ms"


def _cca_slots(bench: Bench, rest_sent: float) -> _Slots:
    """cca's runs of the rest, from their claim to their finish written."""
    with bench.engine.connect() as connection:
        rows = connection.execute(
            select(Task.worker_pid, Task.started_at, Task.finished_at, Task.created_at)
            .where(Task.created_at >= datetime.fromtimestamp(rest_sent, UTC),
                   Task.started_at.is_not(None), Task.finished_at.is_not(None))).all()
    return _Slots.of([_Run(row.worker_pid or 0, row.started_at.timestamp(), row.finished_at.timestamp(),
                           row.created_at.timestamp()) for row in rows])


def _all_done(bench: Bench, n: int) -> Callable[[], bool]:
    return lambda: bench.redis.llen(DONE_KEY) >= n


def _mean_use(busy: list[tuple[float, int]]) -> float:
    return sum(n for _, n in busy) / len(busy) / SLOTS if busy else 0.0


@contextmanager
def _sampling(bench: Bench) -> Iterator[list[tuple[float, int]]]:
    """Yield a list that gets, every 0.2 s while some task waits, the time and how many
    tasks run."""
    busy: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            with bench.engine.connect() as connection:
                counts = dict(connection.execute(
                    select(Task.status, func.count()).where(Task.status.in_(("queued", "running")))
                    .group_by(Task.status)).all())
            if counts.get("queued", 0) > 0:
                busy.append((time.time(), counts.get("running", 0)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield busy
    finally:
        stop.set()
        sampler.join()


def _memory_kb(child: Child) -> int:
    """The proportional resident memory (PSS: a page shared by n processes counts 1/n in
    each) of ``child`` and every process under it: forked pool processes share most pages."""
    tree = _descendants(child.popen.pid) | {child.popen.pid}
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _descendants(root: int) -> set[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found

"""(d) Real runs: the real `claude` CLI against the scripted Messages API of ``tests/``, each
task three model turns of about a second with two tool calls, through the fleet (2 workers x 4
slots, rows created as the API does) and through a bare pool of the same concurrency that runs
``claude -p`` directly. What a user feels is the makespan of a batch and whether a slot sits
idle while work waits; both sides pay the CLI's own start-up and exit."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from bench.config import REPO
from bench.launch import cca_worker
from bench.plan import Counts
from bench.producer import Producer, make_producer
from bench.report import Row, Section
from bench.servers import Bench
from bench.waiting import BenchError, wait_until
from cca_core.models import Task
from tests.fakes.model_api import ModelAPI

WORKERS, SLOTS = 2, 4
EVENT_DELAY_S = 0.2  # between the SSE events of a reply: a model turn of about 1.2 s
MAKESPAN_TARGET = 1.02
UTILISATION_TARGET = 0.95
TOOL = "Bash(git *)"  # allowed by cca's default role, and given to the bare runs
TERMINAL = ("succeeded", "failed", "cancelled", "timed_out", "budget_exceeded")


@dataclass(frozen=True)
class Span:
    """One task's time in a slot, in seconds on one clock."""

    start: float
    end: float


@dataclass(frozen=True)
class Batch:
    """When a batch was submitted, and each task's span."""

    submitted: float
    spans: tuple[Span, ...]

    @property
    def makespan(self) -> float:
        return max(span.end for span in self.spans) - self.submitted

    def utilisation(self, slots: int) -> float:
        """The share of slot time busy from submission until the last task started: while
        work waited, an idle slot is time lost."""
        window_end = max(span.start for span in self.spans)
        window = window_end - self.submitted
        if window <= 0:
            return 1.0
        busy = sum(max(0.0, min(span.end, window_end) - max(span.start, self.submitted))
                   for span in self.spans)
        return busy / (slots * window)


def claude_path() -> Path:
    path = Path(os.environ.get("CLAUDE_BIN") or REPO / ".cache/claude-cli/node_modules/.bin/claude")
    if not os.access(path, os.X_OK):
        raise BenchError(f"(d) needs the real claude CLI at {path}: run ./scripts/setup")
    return path


def prompts(count: int, tag: str) -> list[str]:
    """Distinct scripted tasks: two tool calls and a final answer, about a second a turn. The
    answer is the same on both sides: one that quoted a tool's output would stream longer on
    the side where the output is longer (in the sandbox, git's "not a git repository" names the
    mount boundary: 0.4 s more of scripted chunks a run, measured)."""
    steps = [{"tool_use": {"name": "Bash", "input": {"command": "git --version"}},
              "delay": EVENT_DELAY_S},
             {"tool_use": {"name": "Bash", "input": {"command": "git status --short"}},
              "delay": EVENT_DELAY_S},
             {"text": "done", "delay": EVENT_DELAY_S}]
    return [f"[[script:{json.dumps({'steps': steps})}]] task {tag}-{n}" for n in range(count)]


def measure(bench: Bench, counts: Counts) -> Section:
    claude = claude_path()
    values = bench.task_values()
    bench.reset()
    bare: list[Batch] = []
    fleet: list[Batch] = []
    with ModelAPI() as model:
        env = {"ANTHROPIC_BASE_URL": model.url, "ANTHROPIC_API_KEY": "bench-model-key",
               "CLAUDE_CODE_MAX_RETRIES": "0"}
        with _fleet(bench, claude, env):
            producer = make_producer(bench.settings())
            try:
                for round_ in range(counts.real_rounds):
                    bare.append(_run_bare(claude, env, prompts(counts.real_tasks, f"b{round_}"),
                                          bench.bare_workspace / f"real-{round_}"))
                    fleet.append(_run_fleet(bench, producer, values,
                                            prompts(counts.real_tasks, f"c{round_}")))
            finally:
                producer.close()
    return _section(fleet, bare, counts)


@contextmanager
def _fleet(bench: Bench, claude: Path, env: dict[str, str]) -> Iterator[None]:
    with ExitStack() as stack:
        for n in range(WORKERS):
            stack.enter_context(cca_worker(bench, f"real{n}", SLOTS, standin=claude,
                                           agent_env=env))
        yield


def _run_fleet(bench: Bench, producer: Producer, values: dict, texts: Sequence[str]) -> Batch:
    submitted = time.time()
    ids = [producer.create({**values, "prompt": text}) for text in texts]

    def finished() -> list | None:
        with bench.engine.connect() as connection:
            rows = connection.execute(select(Task.status, Task.started_at, Task.finished_at,
                                             Task.error_message).where(Task.id.in_(ids))).all()
        return rows if all(row.status in TERMINAL for row in rows) else None

    rows = wait_until(finished, timeout_s=600, what="(d) the fleet's batch", interval_s=0.5)
    failed = [row for row in rows if row.status != "succeeded"]
    if failed:
        raise BenchError(f"(d) {len(failed)} fleet tasks did not succeed: {failed[0]}")
    return Batch(submitted, tuple(Span(row.started_at.timestamp(), row.finished_at.timestamp())
                                  for row in rows))


def _run_bare(claude: Path, env: dict[str, str], texts: Sequence[str], root: Path) -> Batch:
    submitted = time.time()
    with ThreadPoolExecutor(WORKERS * SLOTS) as pool:
        spans = list(pool.map(lambda pair: _run_one(claude, env, pair[1], root / str(pair[0])),
                              enumerate(texts)))
    return Batch(submitted, tuple(spans))


def _run_one(claude: Path, env: dict[str, str], prompt: str, workdir: Path) -> Span:
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    run = subprocess.run(
        [str(claude), "-p", prompt, "--output-format", "stream-json", "--verbose",
         "--permission-mode", "dontAsk", f"--allowedTools={TOOL}"],
        env={"PATH": os.environ["PATH"], "HOME": str(workdir),
             "CLAUDE_CONFIG_DIR": str(workdir / ".claude"), **env},
        cwd=workdir, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    end = time.time()
    last = run.stdout.strip().splitlines()[-1:] or ["{}"]
    result = json.loads(last[0]) if last[0].startswith("{") else {}
    if result.get("subtype") != "success" or result.get("is_error"):
        raise BenchError(f"(d) a bare run failed (rc {run.returncode}): {run.stdout[-500:]}"
                         f"{run.stderr[-500:]}")
    return Span(start, end)


def _section(fleet: list[Batch], bare: list[Batch], counts: Counts) -> Section:
    fleet_span = sum(batch.makespan for batch in fleet)
    bare_span = sum(batch.makespan for batch in bare)
    slots = WORKERS * SLOTS
    fleet_use = min(batch.utilisation(slots) for batch in fleet)
    bare_use = min(batch.utilisation(slots) for batch in bare)
    ratio = fleet_span / bare_span
    return Section([
        Row(f"(d) makespan s, {counts.real_tasks} real runs", fleet_span / len(fleet),
            bare_span / len(bare), f"{ratio:.3f}", f"<= {MAKESPAN_TARGET:g}",
            ratio <= MAKESPAN_TARGET),
        Row("(d) slot use while work waits, %", fleet_use * 100, bare_use * 100,
            f"{fleet_use / bare_use:.3f}" if bare_use else "-",
            f">= {UTILISATION_TARGET * 100:g}%", fleet_use >= UTILISATION_TARGET),
    ], [
        f"(d) {counts.real_tasks} tasks x {counts.real_rounds} alternating rounds: the real "
        f"claude CLI, three scripted model turns of about {EVENT_DELAY_S * 6:.1f} s and two "
        f"Bash tool calls each; cca = {WORKERS} workers x {SLOTS} slots (rows created as the "
        f"API does, claimed, supervised, recorded), baseline = a pool of {slots} threads "
        f"running `claude -p` directly. Makespan: submission of the batch to its last end "
        f"(mean of the rounds); slot use: busy slot time from submission until the last task "
        f"started (worst round). Per-round makespans cca/bare: "
        + ", ".join(f"{f.makespan:.1f}/{b.makespan:.1f}" for f, b in zip(fleet, bare, strict=True)),
    ])

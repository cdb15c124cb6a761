"""``python -m bench.faults [--rounds N] [--tasks N] [--faults a,b] [--real]``: each fault struck
under a steady load, ``--rounds`` times, and what it cost.

A round starts two workers of three slots, submits ``--tasks`` tasks (rows as cca's API makes
them, then their messages), strikes the fault once a third of them have started, and waits
until every task has ended. Agents are the stand-in (a bash script: a background process left
behind, a model turn of TURN_S, a result) or, with ``--real``, the real `claude` against the
scripted Messages API of ``tests/`` (a Bash tool call that leaves a background process
behind, then an answer). The fleet runs with a lease of LEASE_S and a sweep every SWEEP_S.

Printed per fault, summed over its rounds: tasks submitted; finished exactly once (succeeded,
one finish recorded); lost (not succeeded); finished twice (a task whose agent ran to the end
in two runs: its side effects happened twice); orphans (background processes of agents still
alive after the round); recovery: from the fault until the last task running when it struck
has ended (worst round), against the target of one lease, one sweep and one run (and, for
Postgres, its 10 s away and one claim backoff). The API and beat faults
(``bench.faults_front``) count their own losses and doubles and time their own recovery.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench import faults_front
from bench.config import child_env
from bench.launch import START_TIMEOUT_S
from bench.processes import Child
from bench.producer import Producer, make_producer
from bench.realruns import claude_path
from bench.servers import Bench, open_bench
from bench.waiting import BenchError, wait_until
from cca_core.infra.embedded import start_redis
from cca_core.models import Task, TaskEvent
from cca_core.names import worker_key
from cca_worker.agent.reaper import kill_tree
from cca_worker.outage import MAX_DELAY_S
from tests.fakes.model_api import ModelAPI

WORKERS, SLOTS = ("fa", "fb"), 3
LEASE_S, SWEEP_S = 6, 2
TURN_S = 2.0
ORPHAN = "cca-fault-orphan"  # the name a background process of an agent runs under
TERMINAL = ("succeeded", "failed", "cancelled", "timed_out", "budget_exceeded")
ROUND_TIMEOUT_S = 300.0
STANDIN = """#!/bin/bash
( exec -a {orphan} sleep {linger} ) </dev/null >/dev/null 2>&1 &
printf '%s\\n' '{{"type":"system","subtype":"init","session_id":"s"}}'
sleep {turn}
printf '%s\\n' '{{"type":"result","subtype":"success","is_error":false,"result":"ok","num_turns":1,\
"total_cost_usd":0,"usage":{{"input_tokens":1,"output_tokens":1}},"session_id":"s"}}'
"""
REAL_STEPS = [{"tool_use": {"name": "Bash", "input": {
    "command": f"(exec -a {ORPHAN} sleep 600 </dev/null >/dev/null 2>&1 &); sleep {TURN_S:g}; echo ran",
    "description": "run"}}}, {"text": "done: {tool_result}"}]


@dataclass
class Fleet:
    """The round's workers, restartable by name."""

    bench: Bench
    claude: Path
    agent_env: dict[str, str]
    workers: dict[str, Child] = field(default_factory=dict)

    def start(self, name: str) -> None:
        sections = {"agents": {"lease_seconds": LEASE_S, "stop_grace_seconds": 2},
                    "worker": {"sweep_interval_seconds": SWEEP_S, "heartbeat_seconds": 1}}
        config = self.bench.write_config(name, SLOTS, standin=self.claude, agent_env=self.agent_env,
                                         sections=sections)
        node = f"{name}@bench"
        argv = [sys.executable, "-m", "cca_cli.main", "worker", "--name", node]
        child = self.bench.children.start(f"{name}-{time.time():.0f}", argv,
                                          child_env(CCA_CONFIG=str(config)), self.bench.root)
        self.workers[name] = child
        wait_until(lambda: self.bench.redis.exists(worker_key(node)), timeout_s=START_TIMEOUT_S,
                   what=f"worker {node}", child=child, interval_s=0.1)

    def signal(self, name: str, sig: int, *, whole: bool) -> None:
        pid = self.workers[name].popen.pid
        if whole:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)

    def stop_all(self) -> None:
        for child in self.workers.values():
            child.stop()
        self.workers.clear()


def strike_worker_kill(fleet: Fleet) -> None:
    """The worker's main process SIGKILLed, started again a second later (as a supervisor would)."""
    fleet.signal("fa", signal.SIGKILL, whole=False)
    fleet.workers["fa"].popen.wait()
    time.sleep(1)
    fleet.start("fa")


def strike_host_lost(fleet: Fleet) -> None:
    """Every process of the worker killed at once, as when its host goes: the tree frozen, then
    killed, agents' sandboxes included (they run in sessions of their own: killing the worker's
    process group alone is not a lost host, since a sandbox whose bubblewrap was starting when
    its parent died misses its parent-death signal and lives on). It does not come back."""
    kill_tree(fleet.workers["fa"].popen.pid)


def strike_paused(fleet: Fleet) -> None:
    """The worker's processes stopped past its lease, then resumed (a frozen VM)."""
    fleet.signal("fa", signal.SIGSTOP, whole=True)
    time.sleep(LEASE_S + 3)
    fleet.signal("fa", signal.SIGCONT, whole=True)


def strike_postgres(fleet: Fleet) -> None:
    """The database unreachable for 10 s: every connection cut, every new one refused."""
    postgres = fleet.bench.postgres
    postgres.execute('ALTER DATABASE "cca" WITH ALLOW_CONNECTIONS false')
    postgres.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'cca'")
    time.sleep(10)
    postgres.execute('ALTER DATABASE "cca" WITH ALLOW_CONNECTIONS true')


def strike_redis(fleet: Fleet) -> None:
    """Redis stopped (SIGTERM: its AOF written) and started again on its data 2 s later."""
    bench = fleet.bench
    port = int(bench.redis_url.rsplit(":", 1)[1].split("/")[0])
    bench.redis_server.stop()
    time.sleep(2)
    bench.redis_server = start_redis(bench.root / "redis", port=port)


# What a fault adds to the recovery target: Postgres stays away 10 s, and a claim waiting
# for it tries again within 5 s (cca_worker.outage's longest backoff).
FAULT_SECONDS = {"postgres": 10.0 + MAX_DELAY_S}
# Faults whose recovery is not a run's: HAProxy takes a dead API out after two failed checks
# a second apart (and a client retries at once); a standby beat leads once the leader's lock
# times out, and fires at its next tick.
OWN_TARGETS = {"api-killed": 3.0,
               "beat-leader": faults_front.BEAT["leader_timeout_seconds"] + faults_front.BEAT["tick_seconds"]
               + faults_front.FIRE_EVERY_S}


@dataclass
class Figures:
    submitted: int = 0
    exactly_once: int = 0
    lost: int = 0
    twice: int = 0
    orphans: int = 0
    recovery_s: float = 0.0


@dataclass
class Round:
    """What a round of any fault works with."""

    bench: Bench
    fleet: Fleet
    producer: Producer
    values: dict[str, Any]  # the row of a task, as the API makes it
    tasks: int
    prompt: str

    def start_workers(self) -> None:
        for name in WORKERS:
            self.fleet.start(name)

    @property
    def body(self) -> dict[str, Any]:
        """A submission's body, for the API or a schedule."""
        return {"prompt": f"{self.prompt} fault task", "allowed_tools": self.values["allowed_tools"]}


def struck_round(strike: Callable[[Fleet], None], round_: Round) -> Figures:
    """Tasks made as the API makes them; ``strike`` once a third have started; recovery until
    the last task running then has ended."""
    bench = round_.bench
    round_.start_workers()
    ids = [round_.producer.create({**round_.values, "prompt": f"{round_.prompt} fault task {n}"})
           for n in range(round_.tasks)]
    wait_until(lambda: _started(bench, ids) >= round_.tasks // 3 or None, timeout_s=120,
               what="a third of the tasks to start", interval_s=0.1)
    with bench.engine.connect() as connection:
        running = connection.scalars(select(Task.id).where(Task.id.in_(ids),
                                                           Task.status == "running")).all()
    struck = time.time()
    strike(round_.fleet)
    _wait_ended(bench, ids)
    with bench.engine.connect() as connection:
        recovered = connection.scalar(select(func.max(Task.finished_at)).where(Task.id.in_(running)))
    return _tally(round_, ids, max(0.0, recovered.timestamp() - struck) if recovered else 0.0)


def api_round(round_: Round) -> Figures:
    ids, longest_wait, doubled = faults_front.api_round(round_.bench, round_.start_workers, round_.body,
                                                        round_.tasks)
    _wait_ended(round_.bench, ids)
    return _tally(round_, ids, longest_wait, twice=doubled)


def beat_round(round_: Round) -> Figures:
    ids, takeover, doubled, missed = faults_front.beat_round(round_.bench, round_.start_workers,
                                                             round_.body, round_.tasks)
    _wait_ended(round_.bench, ids)
    return _tally(round_, ids, takeover, twice=doubled, lost=missed)


FAULTS: dict[str, Callable[[Round], Figures]] = {
    "worker-kill": partial(struck_round, strike_worker_kill),
    "host-lost": partial(struck_round, strike_host_lost),
    "paused": partial(struck_round, strike_paused),
    "postgres": partial(struck_round, strike_postgres),
    "redis": partial(struck_round, strike_redis),
    "api-killed": api_round,
    "beat-leader": beat_round,
}


def _wait_ended(bench: Bench, ids: list[str]) -> None:
    wait_until(lambda: _ended(bench, ids), timeout_s=ROUND_TIMEOUT_S,
               what="every task of the round to end", interval_s=0.5)


def _tally(round_: Round, ids: list[str], recovery_s: float, *, twice: int = 0, lost: int = 0) -> Figures:
    """Count the round's tasks (every one has ended) and what their agents left behind;
    ``twice`` and ``lost`` add what the fault's own checks found."""
    bench = round_.bench
    with bench.engine.connect() as connection:
        rows = connection.execute(select(Task.id, Task.status).where(Task.id.in_(ids))).all()
        results = dict(connection.execute(
            select(TaskEvent.task_id, func.count()).where(TaskEvent.task_id.in_(ids),
                                                         TaskEvent.type == "result")
            .group_by(TaskEvent.task_id)).all())
    round_.fleet.stop_all()
    time.sleep(2)  # what the agents' reapers kill goes away
    succeeded = {row.id for row in rows if row.status == "succeeded"}
    return Figures(
        submitted=len(ids),
        exactly_once=sum(1 for task_id in succeeded if results.get(task_id, 0) == 1),
        lost=len(ids) - len(succeeded) + lost,
        twice=sum(1 for count in results.values() if count > 1) + twice,
        orphans=count_orphans(),
        recovery_s=recovery_s)


def _started(bench: Bench, ids: list[str]) -> int:
    with bench.engine.connect() as connection:
        return connection.scalar(select(func.count()).where(Task.id.in_(ids),
                                                            Task.status != "queued")) or 0


def _ended(bench: Bench, ids: list[str]) -> list[Any] | None:
    try:
        with bench.engine.connect() as connection:
            rows = connection.execute(select(Task.id, Task.status).where(Task.id.in_(ids))).all()
    except Exception:  # the database is being cut off: ask again
        return None
    return rows if all(row.status in TERMINAL for row in rows) else None


def count_orphans() -> int:
    """Processes anywhere on the machine running under the agents' background process name."""
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(ORPHAN.encode()):
                    count += 1
            except OSError:
                continue
    return count


def kill_orphans() -> None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(ORPHAN.encode()):
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="rounds per fault (default 1)")
    parser.add_argument("--tasks", type=int, default=18, help="tasks per round (default 18)")
    parser.add_argument("--faults", default=",".join(FAULTS), help="which, e.g. paused,redis")
    parser.add_argument("--real", action="store_true", help="the real claude, not the stand-in")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.faults.split(",") if name.strip()]
    if unknown := set(chosen) - set(FAULTS):
        parser.error(f"unknown fault(s): {', '.join(sorted(unknown))}; known: {', '.join(FAULTS)}")
    results: dict[str, list[Figures]] = {}
    try:
        with open_bench() as bench, ExitStack() as stack:
            strike = prepare(bench, stack, args.real)
            for name in chosen:
                for round_ in range(args.rounds):
                    _progress(f"{name}, round {round_ + 1} of {args.rounds}")
                    results.setdefault(name, []).append(strike(name, args.tasks))
    except BenchError as exc:
        _progress(f"failed: {exc}")
        return 1
    _print(results, args)
    return 0


def prepare(bench: Bench, stack: ExitStack, real: bool) -> Callable[[str, int], Figures]:
    """Ready ``bench`` for fault rounds (stopped with ``stack``); return what runs one round of
    a fault with a number of tasks, from empty tables, and counts it (tests/faults uses it too)."""
    stack.callback(lambda: bench.redis_server.stop())  # the restarted one too
    claude, env, prompt = _agent(bench, stack, real)
    values = {**bench.task_values(), "allowed_tools": ["Bash"]}
    fleet = Fleet(bench, claude, env)
    stack.callback(fleet.stop_all)

    def strike(name: str, tasks: int) -> Figures:
        bench.reset()
        producer = make_producer(bench.settings())
        try:
            return FAULTS[name](Round(bench, fleet, producer, values, tasks, prompt))
        finally:
            producer.close()
            kill_orphans()

    return strike


def _agent(bench: Bench, stack: ExitStack, real: bool) -> tuple[Path, dict[str, str], str]:
    """What runs as claude, its environment, and the prompt every task starts with."""
    if real:
        model = stack.enter_context(ModelAPI())
        env = {"ANTHROPIC_BASE_URL": model.url, "ANTHROPIC_API_KEY": "bench-model-key",
               "CLAUDE_CODE_MAX_RETRIES": "0"}
        return claude_path(), env, f"[[script:{json.dumps({'steps': REAL_STEPS})}]]"
    standin = bench.root / "claude-fault-standin"
    standin.write_text(STANDIN.format(orphan=ORPHAN, linger=600, turn=f"{TURN_S:g}"))
    standin.chmod(0o755)
    return standin, {}, "stand-in"


def _print(results: dict[str, list[Figures]], args: argparse.Namespace) -> None:
    target = LEASE_S + SWEEP_S + TURN_S + (5 if args.real else 1)  # a run, and starting it
    print(f"{'fault':<14}{'submitted':>10}{'once':>7}{'lost':>6}{'twice':>7}{'orphans':>9}"
          f"{'recovery s':>12}   target s")
    for name, rounds in results.items():
        worst = max(figures.recovery_s for figures in rounds)
        print(f"{name:<14}{sum(f.submitted for f in rounds):>10}{sum(f.exactly_once for f in rounds):>7}"
              f"{sum(f.lost for f in rounds):>6}{sum(f.twice for f in rounds):>7}"
              f"{sum(f.orphans for f in rounds):>9}{worst:>12.1f}   "
              f"{OWN_TARGETS.get(name, target + FAULT_SECONDS.get(name, 0)):g}")
    print(f"\n{'real claude' if args.real else 'stand-in'}, {args.rounds} round(s) of {args.tasks} "
          f"tasks per fault, 2 workers x {SLOTS} slots, lease {LEASE_S} s, sweep every {SWEEP_S} s, "
          f"runs of about {TURN_S:g} s")


def _progress(message: str) -> None:
    print(f"bench.faults: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())

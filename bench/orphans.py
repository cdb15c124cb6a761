"""``python -m bench.orphans [--tasks N] [--killed-every K]``: what many real runs leave behind.

Runs ``--tasks`` real `claude` runs (default 1,000) on 2 workers x 4 slots against the
scripted Messages API of ``tests/``, each agent with the cca MCP bridge (a `cca-mcp` process
it starts) talking to a real API. A task makes a Bash call that leaves a background process
behind (named ORPHAN), asks the bridge for the fleet's status, and answers with what the
bridge said. Every ``--killed-every``-th task instead hangs in its Bash call until its timeout
stops it mid-tool, bridge and background process still running.

Printed: tasks, succeeded, bridge answered (a result quoting the bridge's answer), timed out
as meant, and what was left once every task had ended: background processes, `cca-mcp`
bridges, and any process working inside the fleet's workspace. Target: 0 of each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import select

from bench.faults import ORPHAN, count_orphans, kill_orphans
from bench.launch import api_server, cca_worker
from bench.producer import make_producer
from bench.realruns import claude_path
from bench.servers import open_bench
from bench.waiting import BenchError, wait_until
from cca_core.models import Task
from tests.fakes.model_api import ModelAPI

WORKERS, SLOTS = 2, 4
HANG_TIMEOUT_S = 8  # the task timeout of a hanging task: it is stopped mid-tool
TERMINAL = ("succeeded", "failed", "cancelled", "timed_out", "budget_exceeded")
LEAVE = f"(exec -a {ORPHAN} sleep 600 </dev/null >/dev/null 2>&1 &)"
STEPS = [{"tool_use": {"name": "Bash", "input": {"command": f"{LEAVE}; echo left",
                                                 "description": "leave"}}},
         {"tool_use": {"name": "mcp__cca__cca_status", "input": {}}},
         {"text": "bridge said: {tool_result}"}]
HANG_STEPS = [{"tool_use": {"name": "mcp__cca__cca_status", "input": {}}},
              {"tool_use": {"name": "Bash", "input": {"command": f"{LEAVE}; sleep 120",
                                                      "description": "hang"}}},
              {"text": "never"}]
BRIDGE_ANSWER = "workers_online"  # in every cca_status answer about the fleet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.orphans", description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000, help="real runs (default 1000)")
    parser.add_argument("--killed-every", type=int, default=10,
                        help="every K-th task hangs until its timeout stops it (default 10)")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.killed_every < 1:
        parser.error("--tasks and --killed-every must be at least 1")
    try:
        with open_bench() as bench, ExitStack() as stack, ModelAPI() as model:
            url = stack.enter_context(api_server(bench, processes=1))
            env = {"ANTHROPIC_BASE_URL": model.url, "ANTHROPIC_API_KEY": "bench-model-key",
                   "CLAUDE_CODE_MAX_RETRIES": "0"}
            sections = {"agents": {"bridge_url": url, "stop_grace_seconds": 2}}
            workers = [stack.enter_context(cca_worker(bench, f"orph{n}", SLOTS, standin=claude_path(),
                                                      agent_env=env, sections=sections))
                       for n in range(WORKERS)]
            producer = make_producer(bench.settings())
            stack.callback(producer.close)
            values = {**bench.task_values(), "allowed_tools": ["Bash"]}
            began = time.monotonic()
            ids, hanging = [], set()
            for n in range(args.tasks):
                hangs = n % args.killed_every == args.killed_every - 1
                steps = HANG_STEPS if hangs else STEPS
                task = {**values, "prompt": f"[[script:{json.dumps({'steps': steps})}]] orphans {n}"}
                if hangs:
                    task["timeout_seconds"] = HANG_TIMEOUT_S
                ids.append(producer.create(task))
                if hangs:
                    hanging.add(ids[-1])
            rows = wait_until(lambda: _ended(bench.engine, ids), timeout_s=args.tasks * 10 + 120,
                              what="every task to end", interval_s=2)
            elapsed = time.monotonic() - began
            time.sleep(3)  # a stopped run's reaper has this long to finish
            left = {"background processes": count_orphans(), "cca-mcp bridges": count_bridges(),
                    "processes in the workspace": count_inside(bench.cca_workspace)}
            kill_orphans()
            if not all(worker.alive() for worker in workers):
                raise BenchError("a worker died during the run")
    except BenchError as exc:
        print(f"bench.orphans: failed: {exc}", file=sys.stderr)
        return 1
    _print(rows, hanging, left, elapsed)
    return 0 if not any(left.values()) else 2


def _ended(engine, ids: list[str]) -> list | None:
    with engine.connect() as connection:
        rows = connection.execute(select(Task.id, Task.status, Task.result).where(Task.id.in_(ids))).all()
    return rows if all(row.status in TERMINAL for row in rows) else None


def count_bridges() -> int:
    """`cca-mcp` processes anywhere on the machine (python -m cca_mcp)."""
    return sum(1 for cmdline in _cmdlines() if b"\0-m\0cca_mcp\0" in cmdline)


def count_inside(root: Path) -> int:
    """Processes whose working directory is inside ``root``."""
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd").startswith(str(root)):
                    count += 1
            except OSError:
                continue
    return count


def _cmdlines() -> list[bytes]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((entry / "cmdline").read_bytes())
            except OSError:
                continue
    return found


def _print(rows: list, hanging: set[str], left: dict[str, int], elapsed: float) -> None:
    normal = [row for row in rows if str(row.id) not in hanging]
    stopped = [row for row in rows if str(row.id) in hanging]
    succeeded = [row for row in normal if row.status == "succeeded"]
    answered = [row for row in succeeded if BRIDGE_ANSWER in (row.result or "")]
    print(f"{'tasks':<34}{len(rows):>8}")
    print(f"{'  succeeded (of ' + str(len(normal)) + ')':<34}{len(succeeded):>8}")
    print(f"{'  bridge answered':<34}{len(answered):>8}")
    print(f"{'  timed out mid-tool (of ' + str(len(stopped)) + ')':<34}"
          f"{sum(1 for row in stopped if row.status == 'timed_out'):>8}")
    print("left behind once every task ended (target 0):")
    for what, count in left.items():
        print(f"  {what:<32}{count:>8}")
    print(f"\nreal claude, {WORKERS} workers x {SLOTS} slots, bridge on, {elapsed:.0f} s "
          f"({len(rows) / elapsed:.2f} tasks/s)")


if __name__ == "__main__":
    sys.exit(main())

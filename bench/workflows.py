"""(e) Workflows: how soon a dependent starts once its last dependency finished, and what a
coordinated tree costs over running its children directly.

* Hand-off: chains of three steps (A -> B -> C) with the instant stand-in, one at a time on
  one worker with free slots, so the gap is the hand-off alone (the finishing worker's
  advance, the message, a worker's claim), from the tasks' own Postgres timestamps. The
  baseline is Celery's own chain (a ``link`` callback sent by the worker when the first task
  returns) of the bare stand-in task and a task recording its start.
* Coordinator overhead: the real ``claude`` against the scripted Messages API, a coordinated
  task whose plan has three independent children against the same three tasks submitted
  directly, on 2 workers x 2 slots; the tree adds the planning and the summary runs.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack

from celery import chain
from sqlalchemy import select

from bench.bare import DONE_KEY, OPTIONS, RECORD_START, RUN_STANDIN, done_spans
from bench.launch import bare_worker, cca_worker
from bench.plan import Counts
from bench.realruns import TERMINAL, claude_path
from bench.report import Row, Section, ms, percentile
from bench.servers import Bench
from bench.waiting import BenchError, wait_until
from cca_core.models import Task, Workflow
from tests.fakes.model_api import ModelAPI

HANDOFF_TARGET_S = 0.050
CHAIN = ("a", "b", "c")
TURN_DELAY_S = 0.2  # between the SSE events of a scripted reply: a turn of about a second


def measure(bench: Bench, counts: Counts) -> Section:
    bench.reset()
    cca_gaps: list[float] = []
    bare_gaps: list[float] = []
    with cca_worker(bench, "flow", 4), bare_worker(bench, "flowbare", 4) as bare:
        client = _client(bench)
        for round_ in range(counts.rounds):
            cca_gaps += _cca_chains(bench, client, counts.workflow_chains, f"r{round_}")
            bare_gaps += _bare_chains(bench, bare, counts.workflow_chains)
    tree, direct = _coordinator_overhead(bench, counts.tree_rounds)
    return _section(cca_gaps, bare_gaps, tree, direct, counts)


def _client(bench: Bench):  # type: ignore[no-untyped-def]
    from cca_api import create_app

    return create_app(bench.settings()).test_client()


def _cca_chains(bench: Bench, client, count: int, tag: str) -> list[float]:  # type: ignore[no-untyped-def]
    gaps = []
    for n in range(count):
        steps = [{"name": name, "prompt": f"{tag}-{n}-{name}",
                  "depends_on": [CHAIN[i - 1]] if i else []} for i, name in enumerate(CHAIN)]
        answer = client.post("/api/v1/workflows", json={"name": f"chain-{tag}-{n}",
                                                        "tasks": steps})
        if answer.status_code != 202:
            raise BenchError(f"(e) the API refused a workflow: {answer.get_json()}")
        rows = _wait_workflow(bench, answer.get_json()["id"])
        times = {row.step: row for row in rows}
        gaps += [(times[after].started_at - times[before].finished_at).total_seconds()
                 for before, after in zip(CHAIN, CHAIN[1:], strict=False)]
    return gaps


def _wait_workflow(bench: Bench, workflow_id: str, timeout_s: float = 120) -> list:
    def ended() -> list | None:
        with bench.engine.connect() as connection:
            status = connection.scalar(select(Workflow.status).where(Workflow.id == workflow_id))
            if status == "running":
                return None
            rows = connection.execute(select(Task.step, Task.status, Task.started_at,
                                             Task.finished_at)
                                      .where(Task.workflow_id == workflow_id)).all()
        failed = [row for row in rows if row.step and row.status != "succeeded"]
        if status != "succeeded" or failed:
            raise BenchError(f"(e) workflow {workflow_id} ended {status}: {failed[:1]}")
        return list(rows)

    return wait_until(ended, timeout_s=timeout_s, what="(e) a workflow", interval_s=0.05)


def _bare_chains(bench: Bench, app, count: int) -> list[float]:  # type: ignore[no-untyped-def]
    gaps = []
    for _ in range(count):
        key = f"bench:chain:{uuid.uuid4().hex}"
        bench.redis.delete(DONE_KEY)
        first = app.signature(RUN_STANDIN, args=[uuid.uuid4().hex], options=OPTIONS)
        then = app.signature(RECORD_START, args=[key], options=OPTIONS, immutable=True)
        chain(first, then).apply_async()
        started = wait_until(lambda key=key: bench.redis.lpop(key), timeout_s=60,
                             what="(e) a bare chain", interval_s=0.01)
        gaps.append(float(started) - done_spans(bench.redis)[0].end)
    return gaps


def _coordinator_overhead(bench: Bench, rounds: int) -> tuple[list[float], list[float]]:
    """Makespans (s) of a coordinated three-child tree and of its three tasks run directly."""
    claude = claude_path()
    tree: list[float] = []
    direct: list[float] = []
    with ModelAPI() as model, ExitStack() as stack:
        env = {"ANTHROPIC_BASE_URL": model.url, "ANTHROPIC_API_KEY": "bench-model-key",
               "CLAUDE_CODE_MAX_RETRIES": "0"}
        for n in range(2):
            stack.enter_context(cca_worker(bench, f"tree{n}", 2, standin=claude, agent_env=env))
        client = _client(bench)
        for round_ in range(rounds):
            children = [_scripted(f"child {round_}-{n}: ", "done") for n in range(3)]
            direct.append(_run_direct(bench, client, children))
            tree.append(_run_tree(bench, client, children, round_))
    return tree, direct


def _scripted(prefix: str, text: str) -> str:
    steps = [{"text": text, "delay": TURN_DELAY_S}]
    return prefix + f"[[script:{json.dumps({'steps': steps})}]]"


def _run_direct(bench: Bench, client, prompts: Sequence[str]) -> float:  # type: ignore[no-untyped-def]
    began = time.time()
    ids = [client.post("/api/v1/tasks", json={"prompt": p, "role": "qa"}).get_json()["id"]
           for p in prompts]
    _wait_tasks(bench, ids)
    return time.time() - began


def _run_tree(bench: Bench, client, prompts: Sequence[str], round_: int) -> float:  # type: ignore[no-untyped-def]
    plan = {"action": "delegate", "summary": "three at once",
            "summary_instructions": _scripted(f"summary {round_}: ", "combined"),
            "delegations": [{"name": f"c{n}", "role": "qa", "task": p}
                            for n, p in enumerate(prompts)]}
    steps = [{"tool_use": {"name": "StructuredOutput", "input": plan}, "delay": TURN_DELAY_S}]
    began = time.time()
    answer = client.post("/api/v1/tasks", json={
        "prompt": f"tree {round_} [[script:{json.dumps({'steps': steps})}]]",
        "mode": "coordinate"})
    if answer.status_code != 202:
        raise BenchError(f"(e) the API refused a coordinated task: {answer.get_json()}")
    _wait_tasks(bench, [answer.get_json()["id"]])
    return time.time() - began


def _wait_tasks(bench: Bench, ids: Sequence[str]) -> None:
    def ended() -> list | None:
        with bench.engine.connect() as connection:
            rows = connection.execute(select(Task.status, Task.error_message)
                                      .where(Task.id.in_(ids))).all()
        return list(rows) if all(row.status in TERMINAL for row in rows) else None

    rows = wait_until(ended, timeout_s=300, what="(e) tasks", interval_s=0.05)
    if failed := [row for row in rows if row.status != "succeeded"]:
        raise BenchError(f"(e) a task did not succeed: {failed[0]}")


def _section(cca: list[float], bare: list[float], tree: list[float], direct: list[float],
             counts: Counts) -> Section:
    p50, p99 = percentile(cca, 50), percentile(cca, 99)
    bare50, bare99 = percentile(bare, 50), percentile(bare, 99)
    overhead = sum(tree) / len(tree) - sum(direct) / len(direct)
    return Section([
        Row("(e) dependent start after its dependency, p50 ms", ms(p50), ms(bare50),
            f"{p50 / bare50:.2f}" if bare50 > 0 else "-", f"<= {ms(HANDOFF_TARGET_S):g} ms",
            p50 <= HANDOFF_TARGET_S),
        Row("(e) dependent start after its dependency, p99 ms", ms(p99), ms(bare99),
            f"{p99 / bare99:.2f}" if bare99 > 0 else "-", "-", None),
        Row("(e) 3-child tree makespan s (direct: 3 tasks)", sum(tree) / len(tree),
            sum(direct) / len(direct), f"{sum(tree) / sum(direct):.2f}", "-", None),
    ], [
        f"(e) hand-off: {len(cca)} gaps from {counts.workflow_chains} chains a->b->c x "
        f"{counts.rounds} rounds, one chain at a time on one worker with 4 slots (instant "
        "stand-in); a gap runs from the dependency's finish (its row's finished_at) to the "
        "dependent's claim (started_at). Baseline: Celery's chain (link callback) of the bare "
        "stand-in task and a task recording its start.",
        f"(e) coordinator: the real claude CLI, each run one scripted turn of about "
        f"{TURN_DELAY_S * 6:.1f} s; the tree (plan, three children in parallel, summary) adds "
        f"{overhead:.1f} s on average over the three run directly ({len(tree)} rounds; "
        "tree/direct per round: "
        + ", ".join(f"{t:.1f}/{d:.1f}" for t, d in zip(tree, direct, strict=True)) + ").",
    ])

"""(g) How far a key's daily token quota is overshot while its tasks stream.

A stand-in ``claude`` streams model messages (``message_start`` with its input tokens, a
pause, ``message_delta`` with its output) as the real CLI does with partial messages. Tasks of
one key, more than the worker has slots, run against a ``tokens_per_day`` quota far below what
they would spend. cca charges each message as it streams, so every running agent stops within
one message of the crossing; the baseline is what counting at the end of each run (cca before
this change) lets through: every run that started before the quota was reached, in full.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.launch import cca_worker
from bench.plan import Counts
from bench.producer import make_producer
from bench.report import Row, Section
from bench.servers import Bench
from bench.waiting import BenchError, wait_until
from cca_core.access.keys import Quotas, create_key
from cca_core.models import Task
from cca_core.tasks.status import TERMINAL_STATUSES

KEY = "bench-quota"
MESSAGES, INPUT, OUTPUT, PAUSE_S = 20, 1000, 100, 0.05
PER_MESSAGE = INPUT + OUTPUT
QUOTA = 25 * PER_MESSAGE
_START = {"type": "stream_event", "parent_tool_use_id": None, "event": {
    "type": "message_start", "message": {"id": "m$i", "model": "claude-opus-4-8", "usage": {
        "input_tokens": INPUT, "output_tokens": 1, "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0}}}}
_DELTA = {"type": "stream_event", "parent_tool_use_id": None, "event": {
    "type": "message_delta", "usage": {"output_tokens": OUTPUT}}}
_RESULT = {"type": "result", "subtype": "success", "is_error": False, "result": "ok",
           "num_turns": MESSAGES, "total_cost_usd": 0, "session_id": "s", "usage": {
               "input_tokens": INPUT * MESSAGES, "output_tokens": OUTPUT * MESSAGES}}
_SCRIPT = """#!/bin/bash
printf '%s\\n' '{{"type":"system","subtype":"init","session_id":"s"}}'
for i in $(seq 1 {messages}); do
  printf '%s\\n' "{start}"
  sleep {pause}
  printf '%s\\n' '{delta}'
done
printf '%s\\n' '{result}'
"""


def install_spender(root: Path) -> Path:
    """The stand-in that streams ``MESSAGES`` messages of ``PER_MESSAGE`` tokens."""
    path = root / "claude-spender"
    start = json.dumps(_START, separators=(",", ":")).replace('"', '\\"')
    path.write_text(_SCRIPT.format(messages=MESSAGES, pause=PAUSE_S, start=start,
                                   delta=json.dumps(_DELTA, separators=(",", ":")),
                                   result=json.dumps(_RESULT, separators=(",", ":"))))
    path.chmod(0o755)
    return path


def measure(bench: Bench, counts: Counts) -> Section:
    slots = min(counts.slots, 4)
    tasks = 2 * slots
    with Session(bench.engine) as session, session.begin():
        create_key(session, KEY, "submitter", quotas=Quotas(tokens_per_day=QUOTA))
    producer = make_producer(bench.settings(slots))
    values = {**bench.task_values(), "created_by": KEY}
    try:
        with cca_worker(bench, "g", slots, standin=install_spender(bench.root)):
            ids = [producer.create(values) for _ in range(tasks)]
            spent = _wait_spent(bench, ids)
    finally:
        producer.close()
    bench.reset()
    overshoot = max(0, spent - QUOTA)
    per_agent = overshoot / PER_MESSAGE / slots
    # Counting at the end: each of the first runs goes on in full once it started, and the
    # quota is seen only when runs end (the first ``slots`` end together, already over it).
    at_end = slots * MESSAGES * PER_MESSAGE - QUOTA
    at_end_per_agent = at_end / PER_MESSAGE / slots
    return Section([Row(
        f"(g) quota overshoot, messages per agent ({slots} running)", per_agent, at_end_per_agent,
        f"{per_agent / at_end_per_agent:.2f}x", "<= 1", per_agent <= 1)], [
        f"(g) {tasks} tasks of one key on {slots} slots, each streaming {MESSAGES} messages of "
        f"{PER_MESSAGE} tokens ({PAUSE_S * 1000:g} ms apart), against tokens_per_day = {QUOTA}: "
        f"they spent {spent} tokens, {overshoot} over the quota ({overshoot / PER_MESSAGE:.1f} "
        f"messages across {slots} running agents; a task that starts once the key is over "
        f"does not run). Baseline: counted at each run's end, the "
        f"first {slots} runs go on in full, {at_end} tokens over."])


def _wait_spent(bench: Bench, ids: list[str]) -> int:
    """The tokens the tasks spent (as their budgets count them) once all ended."""
    def ended() -> int | None:
        with bench.engine.connect() as connection:
            statuses = connection.scalars(select(Task.status).where(Task.id.in_(ids))).all()
            if not all(status in TERMINAL_STATUSES for status in statuses):
                return None
            return int(connection.scalar(select(func.sum(
                Task.input_tokens + Task.output_tokens + Task.cache_creation_input_tokens))
                .where(Task.id.in_(ids))) or 0) + 1  # + 1: 0 tokens is an answer too

    spent = wait_until(ended, timeout_s=120, what="(g) tasks", interval_s=0.1) - 1
    if spent <= QUOTA:
        raise BenchError(f"(g) the tasks spent {spent} tokens, never crossing the quota {QUOTA}")
    return spent

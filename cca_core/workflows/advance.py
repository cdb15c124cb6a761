"""Move a workflow on: what a finishing worker, a cancel, a spent budget and the sweep do.

:func:`advance` locks the workflow's row (so the finishes of two steps on two workers never
release a dependent twice), expands a coordinated task's plan once it is there
(:mod:`cca_core.workflows.tree`), asks :func:`~cca_core.workflows.scheduling.next_moves` what
comes next and applies it: releases, cancels and stops steps, ends the workflow (and a
coordinated task with it). :func:`advance_and_send` then sends the released steps.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import cast

from sqlalchemy import Connection, Engine, func, update

from cca_core.models import Task, Workflow
from cca_core.settings import AgentSettings
from cca_core.tasks import store as tasks
from cca_core.tasks.status import TaskStatus, changing
from cca_core.workflows import store, tree
from cca_core.workflows.scheduling import (
    FailurePolicy,
    Halt,
    Moves,
    RunWhen,
    StepState,
    next_moves,
)

QUEUED, RUNNING, CANCELLED = TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.CANCELLED
NOW = func.now()
STOP_MESSAGES = {
    "dependency_failed": "a step it depends on, or with fail_fast any step, did not succeed",
    "budget_exceeded": "its workflow's budget is spent",
    "cancelled": "its workflow was cancelled",
}
END_MESSAGES = {
    TaskStatus.FAILED: "a step did not succeed (see its error)",
    TaskStatus.CANCELLED: "the workflow was cancelled",
    TaskStatus.BUDGET_EXCEEDED: "the workflow's budget was spent; nothing more started",
}

Send = Callable[[Task], object]
"""Sends one released step's message (``partial(enqueue, producer)``)."""


def advance_and_send(engine: Engine, send: Send | None, workflow_id: uuid.UUID,
                     agents: AgentSettings) -> int:
    """Advance the workflow in a transaction of its own, then send its released steps (with
    no ``send``, the sweep sends them). Returns how many were released."""
    with engine.begin() as connection:
        released = advance(connection, workflow_id, agents)
    if send is not None:
        for task in released:
            send(task)
    return len(released)


def advance(connection: Connection, workflow_id: uuid.UUID, agents: AgentSettings) -> list[Task]:
    """Bring the workflow forward; return the steps that may start now, whose messages the
    caller sends after the commit. Must run in a transaction: it locks the workflow's row."""
    workflow = store.lock_workflow(connection, workflow_id)
    if workflow is None or workflow.status != RUNNING:
        return []
    steps = store.steps_of(connection, workflow.id)
    ready: list[Task] = []
    if workflow.parent_task_id is not None and workflow.plan is None:
        expansion = tree.expand(connection, workflow, steps, agents)
        if expansion.ended is not None:
            _end(connection, workflow, expansion.ended, steps, expansion.error)
            return []
        if expansion.ready:
            ready = expansion.ready
            steps = store.steps_of(connection, workflow.id)
    halt: Halt | None = ("cancelled" if workflow.cancel_requested_at is not None
                         else "budget_exceeded" if store.over_budget(connection, workflow.id)
                         else None)
    names = {task.id: store.name_of(task) for task in steps}
    states = {store.name_of(task): StepState(task.status,
                                             tuple(names[dep] for dep in task.depends_on or ()),
                                             task.waiting_for is not None,
                                             cast(RunWhen, task.run_when)) for task in steps}
    moves = next_moves(states, cast(FailurePolicy, workflow.failure_policy), halt=halt)
    released = _apply(connection, {store.name_of(task): task.id for task in steps}, moves)
    if moves.finished is not None:
        _end(connection, workflow, moves.finished, store.steps_of(connection, workflow.id))
    return [*released, *ready]  # a message for a step cancelled meanwhile is refused by its claim


def _apply(connection: Connection, ids: dict[str, uuid.UUID], moves: Moves) -> list[Task]:
    released = [tasks.detached(row) for row in connection.execute(
        update(Task).where(Task.id.in_([ids[name] for name in moves.release]),
                           Task.status == QUEUED, Task.waiting_for.is_not(None))
        .values(waiting_for=None, sent_at=NOW).returning(*tasks.TASK_COLUMNS))] \
        if moves.release else []
    for code in set(moves.cancel.values()):
        connection.execute(
            update(Task).where(Task.id.in_([ids[n] for n, c in moves.cancel.items() if c == code]),
                               Task.status == changing(QUEUED, CANCELLED))
            .values(status=CANCELLED, finished_at=NOW, cancel_requested_at=NOW,
                    waiting_for=None, error_code=code,
                    error_message=f"not started: {STOP_MESSAGES[code]}"))
    for code in set(moves.stop.values()):
        connection.execute(
            update(Task).where(Task.id.in_([ids[n] for n, c in moves.stop.items() if c == code]),
                               Task.status == RUNNING)
            .values(cancel_requested_at=func.coalesce(Task.cancel_requested_at, NOW),
                    cancel_code=func.coalesce(Task.cancel_code, code)))
    return released


def _end(connection: Connection, workflow: Workflow, status: TaskStatus,
         steps: Sequence[Task], error: tuple[str, str] | None = None) -> None:
    """End the workflow with ``status``, and the coordinated task it runs, if any."""
    failed = status != TaskStatus.SUCCEEDED
    code, message = error or ((workflow.error_code or str(status),
                               workflow.error_message or END_MESSAGES[status])
                              if failed else (None, None))
    connection.execute(
        update(Workflow).where(Workflow.id == workflow.id, Workflow.status == RUNNING)
        .values(status=status, finished_at=NOW, error_code=code, error_message=message))
    if workflow.parent_task_id is not None:
        tree.finish_parent(connection, workflow, status, store.steps_in_order(list(steps)),
                           (code, message) if code and message else None)


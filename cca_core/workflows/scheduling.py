"""What a workflow does next, from the state of its steps (pure): which waiting steps start,
which end without running, which running ones stop, and whether the workflow is over.

The store (``cca_core.workflows.advance``) reads the steps under the workflow's row
lock, asks :func:`next_moves`, and applies the answer; every finish, cancel and heartbeat that
may change the answer calls it, and the sweep calls it for every running workflow, so a
worker that dies between its finish and the advance delays its dependents by one sweep.

Policies when a step fails (ends other than ``succeeded``):

* ``fail_fast``: every step that has not started ends ``cancelled`` with
  ``dependency_failed``, running ones are stopped (and end the same way).
* ``continue``: the steps that depend on it, directly or not, end ``cancelled`` with
  ``dependency_failed``; the others run on. A step with ``run_when = "ended"`` runs once its
  dependencies have ended, whatever their status (a report, a clean-up, a summary).

A cancelled workflow (``cancelled``) or one whose budget is spent (``budget_exceeded``) stops
every running step and cancels the rest with that code, and ends with that status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from cca_core.tasks.status import TERMINAL_STATUSES, TaskStatus

FailurePolicy = Literal["fail_fast", "continue"]
Halt = Literal["cancelled", "budget_exceeded"]
RunWhen = Literal["succeeded", "ended"]
DEPENDENCY_FAILED = "dependency_failed"


@dataclass(frozen=True)
class StepState:
    status: str
    depends_on: tuple[str, ...] = ()
    waiting: bool = False  # queued until its dependencies succeed (or end)
    run_when: RunWhen = "succeeded"


@dataclass
class Moves:
    release: list[str] = field(default_factory=list)  # waiting steps that may start now
    cancel: dict[str, str] = field(default_factory=dict)  # not started: step -> error code
    stop: dict[str, str] = field(default_factory=dict)  # running: step -> error code
    finished: TaskStatus | None = None  # the workflow's status, once every step has ended


def next_moves(steps: Mapping[str, StepState], policy: FailurePolicy, *,
               halt: Halt | None = None) -> Moves:
    """The moves that bring the workflow forward. ``halt`` says it was cancelled or its
    budget is spent: then nothing starts and everything stops."""
    moves = Moves()
    failed = any(_ended(state) and state.status != TaskStatus.SUCCEEDED
                 for state in steps.values())
    stopping_code = halt or (DEPENDENCY_FAILED if failed and policy == "fail_fast" else None)
    if stopping_code is not None:
        for name, state in steps.items():
            if state.status == TaskStatus.QUEUED:
                moves.cancel[name] = stopping_code
            elif state.status == TaskStatus.RUNNING:
                moves.stop[name] = stopping_code
    else:
        doomed = _doomed(steps)
        for name, state in steps.items():
            if state.status == TaskStatus.QUEUED and state.waiting:
                if name in doomed:
                    moves.cancel[name] = DEPENDENCY_FAILED
                elif all(_satisfies(steps[dep], state.run_when) for dep in state.depends_on):
                    moves.release.append(name)
    if all(_ended(state) or name in moves.cancel for name, state in steps.items()):
        moves.finished = _final_status(steps, moves, halt)
    return moves


def _ended(state: StepState) -> bool:
    return state.status in TERMINAL_STATUSES


def _satisfies(dependency: StepState, run_when: RunWhen) -> bool:
    return dependency.status == TaskStatus.SUCCEEDED or (run_when == "ended"
                                                         and _ended(dependency))


def _doomed(steps: Mapping[str, StepState]) -> set[str]:
    """Steps that can never start: one of their dependencies, directly or not, failed."""
    doomed: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, state in steps.items():
            if name in doomed or _ended(state) or state.run_when == "ended":
                continue
            if any(dep in doomed or (_ended(steps[dep]) and steps[dep].status != "succeeded")
                   for dep in state.depends_on):
                doomed.add(name)
                changed = True
    return doomed


def _final_status(steps: Mapping[str, StepState], moves: Moves,
                  halt: str | None) -> TaskStatus:
    if halt is not None:
        return TaskStatus(halt)
    if not moves.cancel and all(s.status == TaskStatus.SUCCEEDED for s in steps.values()):
        return TaskStatus.SUCCEEDED
    return TaskStatus.FAILED

"""A task's status and the changes it may go through: the lifecycle in one table.

::

    queued ──claim──▶ running ──finish──▶ succeeded | failed | cancelled | timed_out | budget_exceeded
       ▲ │               ├──claim again when its lease expired (a lost worker; attempts + 1)
       │ │               │
       │ └──cancel or expire──▶ cancelled
       └──retry: a failed run its retry policy runs again (parked until retry_at)

Every UPDATE of ``tasks.status`` in :mod:`cca_core.tasks.store` names its change with
:func:`changing`, which refuses a change the table does not hold, and its WHERE clause comes
from the change's source: a conditional UPDATE, so racing writers cannot make a second one.
"""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    BUDGET_EXCEEDED = "budget_exceeded"


TERMINAL_STATUSES: frozenset[TaskStatus] = frozenset({
    TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.TIMED_OUT,
    TaskStatus.BUDGET_EXCEEDED})
ALL_STATUSES: tuple[TaskStatus, ...] = (TaskStatus.QUEUED, TaskStatus.RUNNING,
                                        *sorted(TERMINAL_STATUSES))

TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.QUEUED: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED}),
    TaskStatus.RUNNING: frozenset({TaskStatus.RUNNING, TaskStatus.QUEUED, *TERMINAL_STATUSES}),
    **{status: frozenset() for status in TERMINAL_STATUSES},
}


class IllegalTransition(ValueError):
    """A status change the lifecycle does not allow (a programming error, not bad input)."""


def changing(source: TaskStatus, target: TaskStatus | str) -> TaskStatus:
    """``source``, once the table allows ``source -> target``; raises IllegalTransition."""
    if TaskStatus(target) not in TRANSITIONS[source]:
        raise IllegalTransition(f"a task may not go from {source} to {target}")
    return source


# What a parked queued task waits for until its retry_at (the sweep sends it then): its failed
# run's retry, a credential with room (one given back sends it sooner), a usage window's reset.
RETRY, CREDENTIAL, USAGE_WINDOW = "retry", "credential", "usage_window"
PARKED = (RETRY, CREDENTIAL, USAGE_WINDOW)

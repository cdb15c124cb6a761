"""The events an endpoint may ask for."""

from __future__ import annotations

TASK_FINISHED = "task.finished"  # every terminal status
TASK_BUDGET_EXCEEDED = "task.budget_exceeded"
SCHEDULE_FIRE_FAILED = "schedule.fire_failed"
QUOTA_REACHED = "quota.reached"
WORKER_LOST = "worker.lost"

EVENTS = (TASK_FINISHED, TASK_BUDGET_EXCEEDED, SCHEDULE_FIRE_FAILED, QUOTA_REACHED, WORKER_LOST)
ADMIN_EVENTS = frozenset({WORKER_LOST})  # about the fleet, not a tenant: admins' endpoints only

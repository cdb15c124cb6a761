"""Firing schedules: the tasks a due schedule creates under its catch-up, expiry and overlap
policies.

Runs in the caller's transaction and returns the new tasks; the caller sends them after it
commits (a crash in between leaves queued rows that the sweep re-sends). Each fire's task
carries the dedupe key (schedule id, fire time), unique in the database: a fire that already
has its task creates nothing, whichever beat tries.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from cca_core import store
from cca_core.catchup import plan_fires
from cca_core.errors import Conflict, Invalid, QuotaExceeded
from cca_core.models import Schedule, Task
from cca_core.quotas import check_quotas, quotas_of
from cca_core.schedule_store import active_runs, db_now, get_schedule, insert_run, lock_due
from cca_core.schedules import timing_of
from cca_core.schemas import TaskCreate
from cca_core.settings import AgentSettings
from cca_core.submission import task_values

log = logging.getLogger(__name__)
DUE_BATCH = 50


def fire_due(session: Session, *, agents: AgentSettings, default_queue: str, grace_s: float,
             max_fires: int) -> list[Task]:
    """Fire every schedule due now (up to ``max_fires`` fires each); return the new tasks."""
    now = db_now(session)
    created: list[Task] = []
    for schedule in lock_due(session, now, DUE_BATCH):
        created += fire_schedule(session, schedule, now, agents=agents,
                                 default_queue=default_queue, grace_s=grace_s, max_fires=max_fires)
    return created


def fire_schedule(session: Session, schedule: Schedule, now: datetime, *, agents: AgentSettings,
                  default_queue: str, grace_s: float, max_fires: int) -> list[Task]:
    """Fire one due schedule and move its next fire on."""
    assert schedule.next_fire_at is not None
    plan = plan_fires(timing_of(schedule), schedule.next_fire_at, now,
                      catchup=schedule.catchup,  # type: ignore[arg-type]
                      grace_s=grace_s, expires_s=schedule.expires_seconds, limit=max_fires)
    if plan.missed and schedule.catchup == "skip_missed":
        _skip(schedule, now, "fires missed while no beat was running were skipped (catchup skip_missed)")
    if plan.stale:
        _skip(schedule, now, f"{plan.stale} fire(s) dropped: older than expires_seconds "
                             f"({schedule.expires_seconds})")
    created = []
    for fire in plan.fires:
        task = _fire(session, schedule, fire, now, agents=agents, default_queue=default_queue)
        if task is not None:
            created.append(task)
    schedule.next_fire_at = plan.next_fire_at
    return created


def run_now(session: Session, schedule_id: str, owner: str | None, *, agents: AgentSettings,
            default_queue: str) -> Task:
    """Create a task from the schedule at once, whatever its overlap policy and even when
    paused; its next fire stays as it was. Raises NotFound, Invalid when its template is no
    longer valid for the fleet, or QuotaExceeded when the schedule's creator is over a
    quota."""
    schedule = get_schedule(session, schedule_id, owner, lock=True)
    _check_creator_quotas(session, schedule)
    now = db_now(session)
    task = insert_run(session, run_values(schedule, now, agents, default_queue))
    if task is None:
        raise Conflict(f"schedule {schedule_id} was already run at {now.isoformat()}")
    schedule.last_fire_at, schedule.last_task_id = now, task.id
    return task


def run_values(schedule: Schedule, fire: datetime, agents: AgentSettings,
               default_queue: str) -> dict[str, Any]:
    """The task row of one fire: the template with the fleet's defaults, linked to the
    schedule by the dedupe key. Raises Invalid when the template no longer validates."""
    try:
        body = TaskCreate.model_validate(schedule.template)
    except ValidationError as exc:
        raise Invalid(f"the task template is no longer valid: {exc.errors()[0]['msg']}",
                      field="task") from None
    expires = schedule.expires_seconds
    return {**task_values(body, agents, default_queue), "owner": schedule.owner,
            "created_by": schedule.created_by, "schedule_id": schedule.id, "scheduled_for": fire,
            "expires_at": fire + timedelta(seconds=expires) if expires else None}


def _fire(session: Session, schedule: Schedule, fire: datetime, now: datetime, *,
          agents: AgentSettings, default_queue: str) -> Task | None:
    active = active_runs(session, schedule.id)
    if active and schedule.overlap == "skip":
        _skip(schedule, now, f"fire at {fire.isoformat()} skipped: the previous run {active[-1].id} "
                             f"is still {active[-1].status} (overlap skip)")
        return None
    if schedule.overlap == "cancel_previous":
        for previous in active:
            with contextlib.suppress(Conflict):  # it ended meanwhile: nothing to cancel
                store.cancel_task(session, str(previous.id))
    try:
        _check_creator_quotas(session, schedule)
        values = run_values(schedule, fire, agents, default_queue)
    except (Invalid, QuotaExceeded) as exc:
        _skip(schedule, now, f"fire at {fire.isoformat()} skipped: {exc.message}")
        return None
    task = insert_run(session, values)
    if task is None:
        log.info("schedule %s: the fire at %s already has its task", schedule.id, fire.isoformat())
        return None
    log.info("schedule %s (%s) fired for %s: task %s", schedule.id, schedule.name,
             fire.isoformat(), task.id)
    schedule.last_fire_at, schedule.last_task_id = fire, task.id
    return task


def _check_creator_quotas(session: Session, schedule: Schedule) -> None:
    """A schedule's tasks count against the key that created it, as if that key sent them:
    raise QuotaExceeded when that key is over a quota."""
    if schedule.created_by:
        check_quotas(session.connection(), schedule.created_by,
                     quotas_of(session, schedule.created_by))


def _skip(schedule: Schedule, now: datetime, reason: str) -> None:
    log.warning("schedule %s (%s): %s", schedule.id, schedule.name, reason)
    schedule.last_skip_at, schedule.last_skip_reason = now, reason

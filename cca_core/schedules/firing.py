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

from cca_core.access.key_limits import NO_LIMITS, limited_values
from cca_core.access.keys import limits_of, named_key, quotas_of
from cca_core.access.quotas import check_quotas
from cca_core.errors import Conflict, Forbidden, Invalid, QuotaExceeded
from cca_core.models import ApiKey, Schedule, Task
from cca_core.schedules.catchup import plan_fires
from cca_core.schedules.lifecycle import timing_of
from cca_core.schedules.store import active_runs, db_now, get_schedule, insert_run, lock_due
from cca_core.settings import AgentSettings
from cca_core.tasks import store
from cca_core.tasks.schemas import TaskCreate
from cca_core.webhooks import store as webhooks
from cca_core.webhooks.events import SCHEDULE_FIRE_FAILED

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
    """Fire one due schedule and move its next fire on; stop it if its key was revoked."""
    assert schedule.next_fire_at is not None
    key = acting_key(session, schedule)
    if key is not None and key.revoked_at is not None:
        _stop(session, schedule, now, revoked_reason(key))
        return []
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
        task = _fire(session, schedule, key, fire, now, agents=agents, default_queue=default_queue)
        if task is not None:
            created.append(task)
    schedule.next_fire_at = plan.next_fire_at
    return created


def run_now(session: Session, schedule_id: str, owner: str | None, *, agents: AgentSettings,
            default_queue: str) -> Task:
    """Create a task from the schedule at once, whatever its overlap policy and even when
    paused; its next fire stays as it was. Raises NotFound, Invalid or Forbidden when its
    template is no longer valid for the fleet or its key, Forbidden when its key was revoked,
    or QuotaExceeded when its key is over a quota."""
    schedule = get_schedule(session, schedule_id, owner, lock=True)
    key = acting_key(session, schedule)
    if key is not None and key.revoked_at is not None:
        raise Forbidden(revoked_reason(key))
    _check_key_quotas(session, key)
    now = db_now(session)
    task = insert_run(session, run_values(schedule, now, agents, default_queue, key))
    if task is None:
        raise Conflict(f"schedule {schedule_id} was already run at {now.isoformat()}")
    schedule.last_fire_at, schedule.last_task_id = now, task.id
    return task


def acting_key(session: Session, schedule: Schedule) -> ApiKey | None:
    """The managed key the schedule's fires act for: its creator or its last editor (None
    for a config key, which has no quotas or limits)."""
    return named_key(session, schedule.created_by) if schedule.created_by else None


def revoked_reason(key: ApiKey) -> str:
    assert key.revoked_at is not None
    return (f"stopped: the key {key.name} it acts for was revoked at "
            f"{key.revoked_at.isoformat()}; an edit or resume by a live key takes it over")


def run_values(schedule: Schedule, fire: datetime, agents: AgentSettings,
               default_queue: str, key: ApiKey | None) -> dict[str, Any]:
    """The task row of one fire: the template with the fleet's defaults, within the limits
    of its key, linked to the schedule by the dedupe key. Raises Invalid or Forbidden when
    the template no longer validates."""
    try:
        body = TaskCreate.model_validate(schedule.template)
    except ValidationError as exc:
        raise Invalid(f"the task template is no longer valid: {exc.errors()[0]['msg']}",
                      field="task") from None
    expires = schedule.expires_seconds
    limits = limits_of(key) if key is not None else NO_LIMITS
    within_role = key is not None and key.role != "admin"  # a config key (None) is an admin
    return {**limited_values(body, limits, agents, default_queue, within_role=within_role),
            "owner": schedule.owner,
            "created_by": schedule.created_by, "schedule_id": schedule.id, "scheduled_for": fire,
            "expires_at": fire + timedelta(seconds=expires) if expires else None}


def _fire(session: Session, schedule: Schedule, key: ApiKey | None, fire: datetime,
          now: datetime, *,
          agents: AgentSettings, default_queue: str) -> Task | None:
    active = active_runs(session, schedule.id)
    if active and schedule.overlap == "skip":
        _skip(schedule, now, f"fire at {fire.isoformat()} skipped: the previous run {active[-1].id} "
                             f"is still {active[-1].status} (overlap skip)")
        return None
    if schedule.overlap == "cancel_previous":
        for previous in active:
            with contextlib.suppress(Conflict):  # it ended meanwhile: nothing to cancel
                store.cancel_task(session.connection(), str(previous.id))
    try:
        _check_key_quotas(session, key)
        values = run_values(schedule, fire, agents, default_queue, key)
    except (Invalid, Forbidden, QuotaExceeded) as exc:
        _skip(schedule, now, f"fire at {fire.isoformat()} skipped: {exc.message}")
        _fire_failed(session, schedule, fire, exc.message)
        return None
    task = insert_run(session, values)
    if task is None:
        log.info("schedule %s: the fire at %s already has its task", schedule.id, fire.isoformat())
        return None
    log.info("schedule %s (%s) fired for %s: task %s", schedule.id, schedule.name,
             fire.isoformat(), task.id)
    schedule.last_fire_at, schedule.last_task_id = fire, task.id
    return task


def _check_key_quotas(session: Session, key: ApiKey | None) -> None:
    """A schedule's tasks count against its key, as if that key sent them: raise
    QuotaExceeded when that key is over a quota."""
    if key is not None:
        check_quotas(session.connection(), key.name, quotas_of(key))


def _skip(schedule: Schedule, now: datetime, reason: str) -> None:
    log.warning("schedule %s (%s): %s", schedule.id, schedule.name, reason)
    schedule.last_skip_at, schedule.last_skip_reason = now, reason


def _fire_failed(session: Session, schedule: Schedule, fire: datetime | None, reason: str) -> None:
    """Tell the schedule's tenant's webhooks (in the beat's transaction)."""
    webhooks.emit(session.connection(), SCHEDULE_FIRE_FAILED, schedule.owner, {"schedule": {
        "id": str(schedule.id), "name": schedule.name, "owner": schedule.owner,
        "fire": fire.isoformat() if fire else None, "reason": reason}})


def _stop(session: Session, schedule: Schedule, now: datetime, reason: str) -> None:
    """Pause the schedule for good (until a live key resumes it), saying why."""
    _skip(schedule, now, reason)
    _fire_failed(session, schedule, None, reason)
    schedule.enabled, schedule.next_fire_at = False, None

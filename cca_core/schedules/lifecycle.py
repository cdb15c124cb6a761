"""The rules of schedules: what a valid schedule is, and how creating, changing, pausing and
resuming one moves its next fire. The SQL is in :mod:`cca_core.schedules.store`; the beat's side
is :mod:`cca_core.schedules.firing`. Functions take the session and never commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from cca_core.errors import Invalid, field_path, plain_message
from cca_core.models import Schedule
from cca_core.schedules.cron import Timing, next_fire
from cca_core.schedules.schemas import ScheduleCreate, ScheduleUpdate
from cca_core.schedules.store import (
    db_now,
    get_schedule,
    insert_schedule,
    rename_schedule,
    save_schedule,
)
from cca_core.settings import AgentSettings
from cca_core.tasks.schemas import TaskCreate
from cca_core.tasks.submission import task_values


def timing_of(schedule: Schedule) -> Timing:
    return Timing(cron=schedule.cron, timezone=schedule.timezone,
                  interval_s=schedule.interval_seconds, anchor=schedule.anchor_at)


def check_template(data: dict[str, Any], agents: AgentSettings, default_queue: str) -> TaskCreate:
    """Validate a task template exactly as ``POST /api/v1/tasks`` validates a body.

    Raises Invalid naming the field as ``task.<field>``.
    """
    try:
        body = TaskCreate.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = field_path(["task", *first["loc"]])
        raise Invalid(f"{field}: {plain_message(first)}", field=field) from None
    if body.parent_id is not None:
        raise Invalid("a schedule's task cannot have a parent_id", field="task.parent_id")
    try:
        task_values(body, agents, default_queue)
    except Invalid as exc:
        raise Invalid(exc.message, field=f"task.{exc.field}" if exc.field else "task",
                      code=exc.code) from None
    return body


def create_schedule(session: Session, body: ScheduleCreate, *, owner: str, created_by: str | None,
                    agents: AgentSettings, default_queue: str) -> Schedule:
    """Store a new schedule with its first fire. Raises Invalid or Conflict (name taken)."""
    if (body.cron is None) == (body.interval_seconds is None):
        raise Invalid("give either cron (with an optional timezone) or interval_seconds",
                      field="cron" if body.cron is None else "interval_seconds")
    template = check_template(body.task.model_dump(exclude_unset=True), agents, default_queue)
    now = db_now(session)
    values: dict[str, Any] = {
        "owner": owner, "name": body.name, "created_by": created_by, "cron": body.cron,
        "timezone": body.timezone or "UTC", "interval_seconds": body.interval_seconds,
        "anchor_at": now if body.interval_seconds else None,
        "template": template.model_dump(mode="json", exclude_unset=True),
        "enabled": body.enabled, "overlap": body.overlap, "catchup": body.catchup,
        "expires_seconds": body.expires_seconds,
    }
    timing = Timing(cron=body.cron, timezone=values["timezone"], interval_s=body.interval_seconds,
                    anchor=values["anchor_at"])
    values["next_fire_at"] = next_fire(timing, now) if body.enabled else None
    return insert_schedule(session, values)


def update_schedule(session: Session, schedule_id: str, changes: ScheduleUpdate, *,
                    owner: str | None, agents: AgentSettings, default_queue: str) -> Schedule:
    """Apply the fields given; a new timing or a resume moves the next fire from now.

    Raises NotFound, Invalid or Conflict (name taken).
    """
    schedule = get_schedule(session, schedule_id, owner, lock=True)
    if changes.cron is not None and changes.interval_seconds is not None:
        raise Invalid("give cron or interval_seconds, not both", field="interval_seconds")
    now = db_now(session)
    retimed = _retime(schedule, changes, now)
    if changes.name is not None and changes.name != schedule.name:
        rename_schedule(session, schedule, changes.name)
    for field in ("overlap", "catchup"):
        if getattr(changes, field) is not None:
            setattr(schedule, field, getattr(changes, field))
    if "expires_seconds" in changes.model_fields_set:
        schedule.expires_seconds = changes.expires_seconds
    if changes.task is not None:
        merged = check_template({**schedule.template, **changes.task}, agents, default_queue)
        schedule.template = merged.model_dump(mode="json", exclude_unset=True)
    if changes.enabled is not None and changes.enabled != schedule.enabled:
        schedule.enabled = changes.enabled
        retimed = True
    if retimed:
        schedule.next_fire_at = next_fire(timing_of(schedule), now) if schedule.enabled else None
    return save_schedule(session, schedule)


def set_enabled(session: Session, schedule_id: str, enabled: bool, owner: str | None) -> Schedule:
    """Pause (no fires, none caught up later) or resume (the next fire from now)."""
    schedule = get_schedule(session, schedule_id, owner, lock=True)
    if schedule.enabled != enabled:
        schedule.enabled = enabled
        schedule.next_fire_at = next_fire(timing_of(schedule), db_now(session)) if enabled else None
    return save_schedule(session, schedule)


def _retime(schedule: Schedule, changes: ScheduleUpdate, now: datetime) -> bool:
    """Switch to the cron, interval or time zone given; say whether the timing changed."""
    if changes.cron is not None:
        schedule.cron, schedule.interval_seconds, schedule.anchor_at = changes.cron, None, None
    elif changes.interval_seconds is not None:
        schedule.cron, schedule.interval_seconds, schedule.anchor_at = None, changes.interval_seconds, now
    if changes.timezone is not None:
        schedule.timezone = changes.timezone
    return any(value is not None for value in (changes.cron, changes.interval_seconds, changes.timezone))

"""Schedules made straight in Postgres, and their runs, for the firing and beat tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cca_core.infra.db import transaction
from cca_core.models import Schedule, Task
from cca_core.schedules import lifecycle as schedules
from cca_core.schedules.schemas import ScheduleCreate, ScheduleUpdate
from cca_core.settings import Settings


def make_schedule(sessions: sessionmaker[Session], settings: Settings, name: str = "job", *,
                  owner: str = "team", prompt: str = "triage new issues", **fields: Any) -> str:
    """Create a schedule (every second unless told otherwise); return its id."""
    if "cron" not in fields:
        fields.setdefault("interval_seconds", 1)
    body = ScheduleCreate.model_validate({"name": name, "task": {"prompt": prompt}, **fields})
    with transaction(sessions) as session:
        schedule = schedules.create_schedule(session, body, owner=owner, created_by="tester",
                                             agents=settings.agents, default_queue="cca")
        return str(schedule.id)


def edit_schedule(sessions: sessionmaker[Session], settings: Settings, schedule_id: str,
                  **changes: Any) -> Schedule:
    with transaction(sessions) as session:
        return schedules.update_schedule(session, schedule_id, ScheduleUpdate.model_validate(changes),
                                         owner=None, agents=settings.agents, default_queue="cca")


def backdate(sessions: sessionmaker[Session], schedule_id: str, seconds: float) -> None:
    """Move a schedule's grid and next fire into the past, as if no beat had run meanwhile."""
    shift = timedelta(seconds=seconds)
    with transaction(sessions) as session:
        session.execute(update(Schedule).where(Schedule.id == uuid.UUID(schedule_id)).values(
            anchor_at=Schedule.anchor_at - shift, next_fire_at=Schedule.next_fire_at - shift))


def get(sessions: sessionmaker[Session], schedule_id: str) -> Schedule:
    with transaction(sessions) as session:
        return session.get_one(Schedule, uuid.UUID(schedule_id))


def runs(sessions: sessionmaker[Session], schedule_id: str) -> list[Task]:
    """The schedule's tasks in fire order."""
    with transaction(sessions) as session:
        return list(session.scalars(select(Task).where(Task.schedule_id == uuid.UUID(schedule_id))
                                    .order_by(Task.scheduled_for)))


def fire_times(sessions: sessionmaker[Session], schedule_id: str) -> list[datetime]:
    return [task.scheduled_for for task in runs(sessions, schedule_id) if task.scheduled_for]


def on_one_grid(times: list[datetime], interval_s: int) -> bool:
    """Consecutive fires of an interval schedule: none missing, none twice."""
    return all(later - earlier == timedelta(seconds=interval_s)
               for earlier, later in zip(times, times[1:], strict=False))

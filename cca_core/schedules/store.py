"""All SQL about schedules and the tasks they fire.

Functions take the session first and never commit. Reads of another owner's schedule raise
NotFound, like tasks, so an id of another tenant leaks nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cca_core.errors import Conflict, NotFound
from cca_core.models import Schedule, Task
from cca_core.tasks import store
from cca_core.tasks.status import TERMINAL_STATUSES

DEDUPE_INDEX = "tasks_schedule_fire_idx"
NAME_KEY = "schedules_owner_name_key"


def parse_schedule_id(value: str) -> uuid.UUID:
    """Parse a schedule id; a malformed one is simply not found."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"schedule {value} not found") from None


def db_now(session: Session) -> datetime:
    """The database's clock, the one clock every beat and API process shares."""
    return session.execute(select(func.clock_timestamp())).scalar_one()


def insert_schedule(session: Session, values: dict[str, Any]) -> Schedule:
    """Insert a schedule. Raises Conflict (field ``name``) when its owner has one so named."""
    row = (
        pg_insert(Schedule)
        .values({"id": uuid.uuid4(), **values})
        .on_conflict_do_nothing(constraint=NAME_KEY)
        .returning(Schedule)
    )
    schedule = session.scalars(row).one_or_none()
    if schedule is None:
        raise Conflict(f"a schedule named {values['name']} already exists", field="name",
                       code="name_taken")
    return schedule


def get_schedule(session: Session, schedule_id: str, owner: str | None = None, *,
                 lock: bool = False) -> Schedule:
    """Return the schedule (row-locked with ``lock``); raise NotFound, also for another owner's."""
    query = select(Schedule).where(Schedule.id == parse_schedule_id(schedule_id))
    if owner is not None:
        query = query.where(Schedule.owner == owner)
    schedule = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if schedule is None:
        raise NotFound(f"schedule {schedule_id} not found")
    return schedule


def list_schedules(session: Session, owner: str | None = None, name: str | None = None) -> list[Schedule]:
    """Schedules by name (of one owner when given)."""
    query = select(Schedule).order_by(Schedule.name, Schedule.owner)
    if owner is not None:
        query = query.where(Schedule.owner == owner)
    if name is not None:
        query = query.where(Schedule.name == name)
    return list(session.scalars(query))


def rename_schedule(session: Session, schedule: Schedule, name: str) -> None:
    """Rename a schedule. Raises Conflict (field ``name``) when its owner has one so named."""
    session.flush()  # earlier changes stay outside the savepoint a clash rolls back
    try:
        with session.begin_nested():
            schedule.name = name
    except IntegrityError:
        raise Conflict(f"a schedule named {name} already exists", field="name",
                       code="name_taken") from None


def save_schedule(session: Session, schedule: Schedule) -> Schedule:
    """Flush changes made to a schedule and return it as stored."""
    schedule.updated_at = func.clock_timestamp()  # type: ignore[assignment]
    session.flush()
    session.refresh(schedule)
    return schedule


def delete_schedule(session: Session, schedule_id: str, owner: str | None = None) -> None:
    """Delete a schedule; its tasks stay, unlinked. Raises NotFound."""
    session.execute(delete(Schedule).where(Schedule.id == get_schedule(session, schedule_id, owner).id))


def lock_due(session: Session, now: datetime, limit: int) -> list[Schedule]:
    """Enabled schedules due at ``now``, row-locked; rows another transaction holds are
    skipped (it is firing them)."""
    return list(session.scalars(
        select(Schedule)
        .where(Schedule.enabled, Schedule.next_fire_at <= now)
        .order_by(Schedule.next_fire_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ))


def seconds_until_due(session: Session) -> float | None:
    """Seconds until the earliest enabled schedule is due (negative when overdue), or None."""
    earliest = session.execute(
        select(func.extract("epoch", func.min(Schedule.next_fire_at) - func.clock_timestamp()))
        .where(Schedule.enabled)
    ).scalar_one()
    return None if earliest is None else float(earliest)


def active_runs(session: Session, schedule_id: uuid.UUID) -> list[Task]:
    """The schedule's tasks still queued or running, oldest first."""
    return list(session.scalars(
        select(Task).where(Task.schedule_id == schedule_id, Task.status.not_in(TERMINAL_STATUSES))
        .order_by(Task.scheduled_for)
    ))


def insert_run(session: Session, values: dict[str, Any]) -> Task | None:
    """Insert a task for one fire (``values`` hold ``schedule_id`` and ``scheduled_for``).

    Returns None when that fire already has its task: the unique dedupe index makes a second
    fire of the same moment, by any beat, a no-op.
    """
    try:
        with session.begin_nested():
            task, _ = store.create_task(session.connection(), values)
    except IntegrityError as exc:
        if getattr(getattr(exc.orig, "diag", None), "constraint_name", None) == DEDUPE_INDEX:
            return None
        raise
    return task


def list_runs(session: Session, schedule_id: uuid.UUID, *, limit: int,
              cursor: str | None = None) -> tuple[list[Task], str | None]:
    """The schedule's tasks, latest fire first, keyset-paginated. Returns (tasks, next_cursor)."""
    query = (select(Task).where(Task.schedule_id == schedule_id)
             .order_by(Task.scheduled_for.desc(), Task.id.desc()).limit(limit + 1))
    if cursor:
        fire, last_id = store.decode_cursor(cursor)
        query = query.where(tuple_(Task.scheduled_for, Task.id) < tuple_(fire, last_id))
    tasks = list(session.scalars(query))
    if len(tasks) <= limit:
        return tasks, None
    last = tasks[limit - 1]
    return tasks[:limit], store.encode_cursor(last.scheduled_for or last.created_at, last.id)

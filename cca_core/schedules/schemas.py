"""Request and response shapes of the schedule API, shared by the API, the CLI and the MCP bridge.

A schedule's ``task`` is a task template: the body of ``POST /api/v1/tasks``, validated by the
same :class:`~cca_core.tasks.schemas.TaskCreate`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from cca_core.schedules.catchup import CatchUp
from cca_core.schedules.cron import check_cron, check_timezone
from cca_core.tasks.schemas import TaskCreate, TaskError
from cca_core.tasks.status import TaskStatus

Overlap = Literal["skip", "allow", "cancel_previous"]
MAX_INTERVAL_S = 366 * 86400
ScheduleName = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$",
                     description="Unique among the schedules of one owner.")
CronField = Field(default=None, max_length=200, examples=["0 7 * * 1-5", "*/30 * * * *"],
                  description="5 fields: minute hour day-of-month month day-of-week.")
TimezoneField = Field(default=None, max_length=64, examples=["Europe/Berlin"],
                      description="IANA time zone of the cron expression (default UTC).")
IntervalField = Field(default=None, ge=1, le=MAX_INTERVAL_S,
                      description="Fire every this many seconds (instead of cron).")
ExpiresField = Field(default=None, ge=1, le=MAX_INTERVAL_S,
                     description="Drop a fire this many seconds after its scheduled time.")


def _cron(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_cron(value)
    except ValueError as exc:
        raise PydanticCustomError("cron", str(exc)) from None


def _timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        check_timezone(value)
    except ValueError as exc:
        raise PydanticCustomError("timezone", str(exc)) from None
    return value


class ScheduleCreate(BaseModel):
    """The body of ``POST /api/v1/schedules``: a cron expression or an interval, not both."""

    model_config = ConfigDict(extra="forbid")

    name: str = ScheduleName
    cron: str | None = CronField
    timezone: str | None = TimezoneField
    interval_seconds: int | None = IntervalField
    task: TaskCreate = Field(description="The task each fire submits (as POST /api/v1/tasks).")
    enabled: bool = True
    overlap: Overlap = Field(default="skip", description=(
        "When the previous run is still queued or running: skip this fire, allow it, or "
        "cancel the previous run."))
    catchup: CatchUp = Field(default="skip_missed", description=(
        "Fires missed while no beat ran: skip them, or run once for all of them."))
    expires_seconds: int | None = ExpiresField

    _check_cron = field_validator("cron")(_cron)
    _check_timezone = field_validator("timezone")(_timezone)


class ScheduleUpdate(BaseModel):
    """The body of ``PATCH /api/v1/schedules/{id}``: only the fields given change. ``task``
    is merged into the template; giving ``cron`` replaces an interval and vice versa."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100,
                             pattern=r"^[A-Za-z0-9_.\-]+$")
    cron: str | None = CronField
    timezone: str | None = TimezoneField
    interval_seconds: int | None = IntervalField
    task: dict[str, Any] | None = Field(default=None, description="Template fields to change.")
    enabled: bool | None = None
    overlap: Overlap | None = None
    catchup: CatchUp | None = None
    expires_seconds: int | None = ExpiresField

    _check_cron = field_validator("cron")(_cron)
    _check_timezone = field_validator("timezone")(_timezone)


class ScheduleView(BaseModel):
    """A schedule as the API returns it."""

    id: str
    name: str
    owner: str
    cron: str | None
    timezone: str
    interval_seconds: int | None
    task: dict[str, Any]
    enabled: bool
    overlap: Overlap
    catchup: CatchUp
    expires_seconds: int | None
    next_fire_at: datetime | None
    last_fire_at: datetime | None
    last_task_id: str | None
    last_skip_at: datetime | None
    last_skip_reason: str | None
    created_by: str | None = Field(description="The key its fires act for (quotas, limits): "
                                   "its creator or its last editor.")
    created_at: datetime
    updated_at: datetime


class SchedulePage(BaseModel):
    schedules: list[ScheduleView]


class RunView(BaseModel):
    """One task a schedule created: when it was due, and how it went."""

    task_id: str
    scheduled_for: datetime | None
    status: TaskStatus
    error: TaskError | None
    cost_usd: float
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunPage(BaseModel):
    runs: list[RunView]
    next_cursor: str | None


def schedule_view(schedule: Any) -> ScheduleView:
    """Present a ``schedules`` row (cca_core.models.Schedule) as the API shape."""
    return ScheduleView(
        id=str(schedule.id), name=schedule.name, owner=schedule.owner, cron=schedule.cron,
        timezone=schedule.timezone, interval_seconds=schedule.interval_seconds,
        task=schedule.template, enabled=schedule.enabled, overlap=schedule.overlap,
        catchup=schedule.catchup, expires_seconds=schedule.expires_seconds,
        next_fire_at=schedule.next_fire_at, last_fire_at=schedule.last_fire_at,
        last_task_id=str(schedule.last_task_id) if schedule.last_task_id else None,
        last_skip_at=schedule.last_skip_at, last_skip_reason=schedule.last_skip_reason,
        created_by=schedule.created_by, created_at=schedule.created_at,
        updated_at=schedule.updated_at,
    )


def run_view(task: Any) -> RunView:
    """Present a task a schedule created."""
    error = TaskError(code=task.error_code, message=task.error_message or "") if task.error_code else None
    return RunView(task_id=str(task.id), scheduled_for=task.scheduled_for, status=task.status,
                   error=error, cost_usd=float(task.cost_usd or 0), created_at=task.created_at,
                   started_at=task.started_at, finished_at=task.finished_at)

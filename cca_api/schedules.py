"""Schedule endpoints: create, list, show, change, delete, run now, pause, resume, runs.

Ownership works as for tasks: a schedule belongs to the caller's tenant, non-admins see only
their own (another tenant's answers 404), and readers may only look.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from cca_api import operations
from cca_api.auth import Principal, Role, current, require_role
from cca_api.narrowing import permitted_values
from cca_api.operations import operation
from cca_api.resources import Resources
from cca_core.access.quotas import check_quotas
from cca_core.errors import Forbidden, Invalid
from cca_core.infra.db import transaction
from cca_core.models import Schedule
from cca_core.schedules import firing
from cca_core.schedules import lifecycle as schedules
from cca_core.schedules import store as schedule_store
from cca_core.schedules.schemas import (
    RunPage,
    ScheduleCreate,
    SchedulePage,
    ScheduleUpdate,
    ScheduleView,
    run_view,
    schedule_view,
)
from cca_core.tasks.schemas import TaskCreate, TaskView, task_view
from cca_core.tasks.submission import send

bp = Blueprint("schedules", __name__, url_prefix="/api/v1/schedules")
WRITERS: tuple[Role, ...] = ("admin", "submitter")


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=100)


class RunsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=20, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=500)


def resources() -> Resources:
    return current_app.extensions["cca"]


def fleet_defaults(res: Resources) -> dict[str, Any]:
    return {"agents": res.settings.agents, "default_queue": res.settings.agents.queues[0]}


def check_permissions(schedule: Schedule, principal: Principal, res: Resources) -> None:
    """The template must be a task the caller could submit: within its key's limits and (for
    a non-admin) its role. Raises Invalid or Forbidden naming ``task.<field>``."""
    try:
        permitted_values(TaskCreate.model_validate(schedule.template), principal,
                         res.settings.agents)
    except (Invalid, Forbidden) as exc:
        raise type(exc)(exc.message, field=f"task.{exc.field}" if exc.field else "task",
                        code=exc.code) from None


def take_over(session: Session, schedule: Schedule, principal: Principal, res: Resources) -> None:
    """Make the caller the key the schedule's fires act for (on create, edit and resume):
    its template is re-checked against the caller's permissions and limits, and the caller
    must be within its quotas, so an editor never borrows what the creator's key allowed."""
    check_permissions(schedule, principal, res)
    check_quotas(session.connection(), principal.name, principal.quotas)
    schedule.created_by = principal.name


def view(schedule: Schedule) -> dict[str, Any]:
    return schedule_view(schedule).model_dump(mode="json")


@bp.post("")
@operation("Create a schedule", ScheduleView, status=201, body=ScheduleCreate,
           errors=(400, 403, 409, 415, 422))
def create() -> tuple[dict[str, Any], int]:
    res, principal = resources(), require_role(*WRITERS)
    body = operations.body(ScheduleCreate)
    with transaction(res.sessions) as session:
        schedule = schedules.create_schedule(session, body, owner=principal.tenant,
                                             created_by=principal.name, **fleet_defaults(res))
        take_over(session, schedule, principal, res)
        return view(schedule), 201


@bp.get("")
@operation("List schedules by name", SchedulePage, query=ListQuery, errors=(422,))
def index() -> dict[str, Any]:
    query = operations.query(ListQuery)
    with transaction(resources().sessions) as session:
        rows = schedule_store.list_schedules(session, current().scope(), query.name)
        return SchedulePage(schedules=[schedule_view(row) for row in rows]).model_dump(mode="json")


@bp.get("/<schedule_id>")
@operation("Get a schedule", ScheduleView, errors=(404,))
def show(schedule_id: str) -> dict[str, Any]:
    with transaction(resources().sessions) as session:
        return view(schedule_store.get_schedule(session, schedule_id, current().scope()))


@bp.patch("/<schedule_id>")
@operation("Change a schedule (the fields given)", ScheduleView, body=ScheduleUpdate,
           errors=(400, 403, 404, 409, 415, 422))
def update(schedule_id: str) -> dict[str, Any]:
    res, principal = resources(), require_role(*WRITERS)
    changes = operations.body(ScheduleUpdate)
    with transaction(res.sessions) as session:
        schedule = schedules.update_schedule(session, schedule_id, changes, owner=principal.scope(),
                                             **fleet_defaults(res))
        if changes.model_fields_set != {"enabled"} or changes.enabled:  # pausing needs no check
            take_over(session, schedule, principal, res)
        return view(schedule)


@bp.delete("/<schedule_id>")
@operation("Delete a schedule (its tasks stay)", None, status=204, errors=(403, 404))
def remove(schedule_id: str) -> tuple[str, int]:
    scope = require_role(*WRITERS).scope()
    with transaction(resources().sessions) as session:
        schedule_store.delete_schedule(session, schedule_id, scope)
    return "", 204


@bp.post("/<schedule_id>/pause")
@operation("Pause a schedule", ScheduleView, errors=(403, 404))
def pause(schedule_id: str) -> dict[str, Any]:
    scope = require_role(*WRITERS).scope()
    with transaction(resources().sessions) as session:
        return view(schedules.set_enabled(session, schedule_id, False, scope))


@bp.post("/<schedule_id>/resume")
@operation("Resume a schedule", ScheduleView, errors=(403, 404))
def resume(schedule_id: str) -> dict[str, Any]:
    res, principal = resources(), require_role(*WRITERS)
    with transaction(res.sessions) as session:
        schedule = schedules.set_enabled(session, schedule_id, True, principal.scope())
        take_over(session, schedule, principal, res)
        return view(schedule)


@bp.post("/<schedule_id>/run")
@operation("Run a schedule's task now", TaskView, status=202, errors=(403, 404, 422))
def run(schedule_id: str) -> tuple[dict[str, Any], int]:
    res, principal = resources(), require_role(*WRITERS)
    with transaction(res.sessions) as session:
        check_permissions(schedule_store.get_schedule(session, schedule_id, principal.scope()),
                          principal, res)
        task = firing.run_now(session, schedule_id, principal.scope(), **fleet_defaults(res))
    send(res.celery, res.engine, task)
    return task_view(task).model_dump(mode="json"), 202


@bp.get("/<schedule_id>/runs")
@operation("Tasks a schedule created, latest fire first", RunPage, query=RunsQuery,
           errors=(404, 422))
def runs(schedule_id: str) -> dict[str, Any]:
    query = operations.query(RunsQuery)
    with transaction(resources().sessions) as session:
        schedule = schedule_store.get_schedule(session, schedule_id, current().scope())
        tasks, cursor = schedule_store.list_runs(session, schedule.id, limit=query.limit,
                                                 cursor=query.cursor)
        return RunPage(runs=[run_view(task) for task in tasks], next_cursor=cursor).model_dump(mode="json")

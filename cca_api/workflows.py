"""Workflow endpoints: submit a graph of named tasks, read it with its statuses and costs,
list, cancel. Ownership works as for tasks; a task token may not touch workflows."""

from __future__ import annotations

from functools import partial
from typing import Any
from uuid import UUID

from flask import Blueprint, current_app
from pydantic import BaseModel, ConfigDict, Field

from cca_api import operations
from cca_api.auth import Principal, current, require_role
from cca_api.narrowing import permitted_values
from cca_api.operations import operation
from cca_api.resources import Resources
from cca_core.access.quotas import check_quotas
from cca_core.errors import CcaError, Invalid
from cca_core.infra.db import transaction
from cca_core.settings import AgentSettings
from cca_core.tasks.status import TaskStatus
from cca_core.tasks.submission import send
from cca_core.workflows import store
from cca_core.workflows.advance import advance_and_send
from cca_core.workflows.graph import check_graph, unique_names
from cca_core.workflows.schemas import (
    WorkflowCreate,
    WorkflowPage,
    WorkflowView,
    workflow_summary,
    workflow_view,
)

bp = Blueprint("workflows", __name__, url_prefix="/api/v1/workflows")


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: TaskStatus | None = None
    parent_task_id: UUID | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=500)


def resources() -> Resources:
    return current_app.extensions["cca"]


@bp.post("")
@operation("Submit a workflow: named tasks with dependencies", WorkflowView, status=202,
           body=WorkflowCreate, errors=(400, 403, 413, 415, 422))
def submit() -> tuple[dict[str, Any], int]:
    res = resources()
    principal = require_role("admin", "submitter")
    body = operations.body(WorkflowCreate)
    steps = checked_steps(body, principal, res.settings.agents)
    values = {"name": body.name, "failure_policy": body.failure_policy,
              "token_budget": body.token_budget, "budget_usd": body.budget_usd,
              "meta": body.metadata, "owner": principal.tenant, "created_by": principal.name}
    with res.engine.begin() as connection:
        check_quotas(connection, principal.name, principal.quotas)
        workflow, ready = store.create_workflow(connection, values, steps)
        view = workflow_view(workflow, store.get_workflow(connection, str(workflow.id))[1])
    for task in ready:
        send(res.celery, res.engine, task)
    return view.model_dump(mode="json"), 202


def checked_steps(body: WorkflowCreate, principal: Principal,
                  agents: AgentSettings) -> list[store.NewStep]:
    """The steps to insert, each within the key's limits as a task of its own. Raises
    Invalid or Forbidden naming the field (``tasks[2].role``)."""
    if len(body.tasks) > agents.max_workflow_steps:
        raise Invalid(f"a workflow may have at most {agents.max_workflow_steps} steps "
                      f"(agents.max_workflow_steps), this one has {len(body.tasks)}", field="tasks")
    unique_names([step.name for step in body.tasks])
    check_graph({step.name: step.depends_on for step in body.tasks})
    steps = []
    for index, step in enumerate(body.tasks):
        try:
            values = permitted_values(step, principal, agents)
        except CcaError as exc:
            exc.field = f"tasks[{index}].{exc.field}" if exc.field else f"tasks[{index}]"
            raise
        steps.append(store.NewStep(step.name, step.depends_on, values, step.run_when))
    return steps


@bp.get("/<workflow_id>")
@operation("Get a workflow: its graph with each step's status, usage and cost, and the totals",
           WorkflowView, errors=(404,))
def show(workflow_id: str) -> dict[str, Any]:
    with transaction(resources().sessions) as session:
        workflow, steps = store.get_workflow(session.connection(), workflow_id, current().scope())
    return workflow_view(workflow, steps).model_dump(mode="json")


@bp.get("")
@operation("List workflows, newest first", WorkflowPage, query=ListQuery, errors=(422,))
def index() -> dict[str, Any]:
    query = operations.query(ListQuery)
    parent_task_id = str(query.parent_task_id) if query.parent_task_id else None
    with transaction(resources().sessions) as session:
        found, cursor = store.list_workflows(
            session.connection(), owner=current().scope(), status=query.status,
            parent_task_id=parent_task_id, limit=query.limit, cursor=query.cursor)
    page = WorkflowPage(workflows=[workflow_summary(w) for w in found], next_cursor=cursor)
    return page.model_dump(mode="json")


@bp.post("/<workflow_id>/cancel")
@operation("Cancel a workflow: every step not started ends cancelled, running ones stop",
           WorkflowView, errors=(404, 409))
def cancel(workflow_id: str) -> dict[str, Any]:
    res = resources()
    scope = require_role("admin", "submitter").scope()
    with res.engine.begin() as connection:
        cancelled = store.request_cancel(connection, workflow_id, scope)
    advance_and_send(res.engine, partial(send, res.celery, res.engine), cancelled, res.settings.agents)
    with transaction(res.sessions) as session:
        workflow, steps = store.get_workflow(session.connection(), workflow_id, scope)
    return workflow_view(workflow, steps).model_dump(mode="json")

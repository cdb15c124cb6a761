"""All SQL about workflows: create one with its steps, read, list, cancel, and advance it.

Like :mod:`cca_core.tasks.store`, every function takes a ``Connection`` and never commits.
:func:`advance` locks the workflow's row, so the finishes of two steps on two workers never
release a dependent twice; it must run inside a transaction (``engine.begin()``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, func, insert, select, tuple_, update

from cca_core.errors import Conflict, NotFound
from cca_core.models import Task, Workflow
from cca_core.tasks import store as tasks
from cca_core.tasks.status import TaskStatus
from cca_core.workflows.graph import check_graph

RUNNING = TaskStatus.RUNNING
WAITING_FOR_DEPENDENCIES = "dependencies"
NOW = func.now()
WORKFLOW_COLUMNS = [mapped.label(key) for key, mapped in Workflow.__mapper__.columns.items()]
_NEW_WORKFLOW = Workflow.__mapper__.class_manager.new_instance


@dataclass(frozen=True)
class NewStep:
    """A step to insert: its name, the names it depends on, and its task row's values."""

    name: str
    depends_on: Sequence[str]
    values: dict[str, Any]
    run_when: str = "succeeded"


def set_plan(connection: Connection, workflow_id: uuid.UUID, plan: dict[str, Any]) -> None:
    connection.execute(update(Workflow).where(Workflow.id == workflow_id).values(plan=plan))


def workflow_of(row: Any) -> Workflow:
    """A detached Workflow holding ``row`` (of ``WORKFLOW_COLUMNS``)."""
    workflow = _NEW_WORKFLOW()
    workflow.__dict__.update(row._mapping)
    return workflow


def create_workflow(connection: Connection, values: dict[str, Any],
                    steps: Sequence[NewStep]) -> tuple[Workflow, list[Task]]:
    """Insert a running workflow and its steps; return it and the steps that may start now
    (those without dependencies: the caller sends their messages after the commit)."""
    row = {"id": uuid.uuid4(), "status": RUNNING, **values}
    row["metadata"] = row.pop("meta", {})
    workflow = workflow_of(connection.execute(
        insert(cast(Table, Workflow.__table__)).values(**row).returning(*WORKFLOW_COLUMNS)).one())
    ready = add_steps(connection, workflow, steps)
    return workflow, ready


def add_steps(connection: Connection, workflow: Workflow, steps: Sequence[NewStep],
              existing: dict[str, uuid.UUID] | None = None) -> list[Task]:
    """Insert ``steps`` into ``workflow`` (their dependencies among them or ``existing``
    steps, name -> task id); return those that may start now."""
    ids = {**(existing or {}), **{step.name: uuid.uuid4() for step in steps}}
    ready = []
    for step in steps:
        task, _ = tasks.create_task(connection, {
            **step.values, "id": ids[step.name], "workflow_id": workflow.id, "step": step.name,
            "owner": workflow.owner, "created_by": workflow.created_by,
            "depends_on": [ids[name] for name in step.depends_on] or None,
            "waiting_for": WAITING_FOR_DEPENDENCIES if step.depends_on else None,
            "run_when": step.run_when})
        if not step.depends_on:
            ready.append(task)
    return ready


def get_workflow(connection: Connection, workflow_id: str,
                 owner: str | None = None) -> tuple[Workflow, list[Task]]:
    """The workflow and its steps, each after its dependencies. Raises NotFound, also for
    another owner's workflow."""
    row = connection.execute(select(*WORKFLOW_COLUMNS)
                             .where(Workflow.id == tasks.parse_task_id(workflow_id, "workflow"))).first()
    if row is None or (owner is not None and row.owner != owner):
        raise NotFound(f"workflow {workflow_id} not found")
    workflow = workflow_of(row)
    return workflow, steps_in_order(steps_of(connection, workflow.id))


def steps_of(connection: Connection, workflow_id: uuid.UUID) -> list[Task]:
    """The workflow's steps by name (a coordinated task points to its tree's workflow too,
    with no step name: it is not one of its steps)."""
    query = (select(*tasks.TASK_COLUMNS)
             .where(Task.workflow_id == workflow_id, Task.step.is_not(None)).order_by(Task.step))
    return [tasks.detached(row) for row in connection.execute(query)]


def name_of(task: Task) -> str:
    """A step's name (every step of a workflow has one)."""
    return task.step or ""


def steps_in_order(steps: list[Task]) -> list[Task]:
    """``steps`` (by name) ordered so each comes after the steps it depends on."""
    names = {task.id: name_of(task) for task in steps}
    by_name = {name_of(task): task for task in steps}
    order = check_graph({name_of(task): [names[dep] for dep in task.depends_on or ()]
                         for task in steps})
    return [by_name[name] for name in order]


def list_workflows(connection: Connection, *, owner: str | None = None,
                   status: str | None = None, parent_task_id: str | None = None,
                   limit: int = 50, cursor: str | None = None) -> tuple[list[Workflow], str | None]:
    """Newest first, keyset-paginated. Returns (workflows, next_cursor)."""
    query = (select(*WORKFLOW_COLUMNS)
             .order_by(Workflow.created_at.desc(), Workflow.id.desc()).limit(limit + 1))
    if owner is not None:
        query = query.where(Workflow.owner == owner)
    if status:
        query = query.where(Workflow.status == status)
    if parent_task_id:
        query = query.where(Workflow.parent_task_id == tasks.parse_task_id(parent_task_id))
    if cursor:
        created_at, last_id = tasks.decode_cursor(cursor)
        query = query.where(tuple_(Workflow.created_at, Workflow.id) < tuple_(created_at, last_id))
    found = [workflow_of(row) for row in connection.execute(query)]
    if len(found) <= limit:
        return found, None
    last = found[limit - 1]
    return found[:limit], tasks.encode_cursor(last.created_at, last.id)


def request_cancel(connection: Connection, workflow_id: str,
                   owner: str | None = None) -> uuid.UUID:
    """Mark the workflow cancelled (the next :func:`advance` stops its steps); return its id.
    Raises NotFound, or Conflict when it already ended."""
    workflow, _ = get_workflow(connection, workflow_id, owner)
    marked = connection.execute(
        update(Workflow).where(Workflow.id == workflow.id, Workflow.status == RUNNING)
        .values(cancel_requested_at=func.coalesce(Workflow.cancel_requested_at, NOW))
        .returning(Workflow.id)).first()
    if marked is None:
        raise Conflict(f"workflow {workflow_id} already ended as {workflow.status}",
                       code="already_finished")
    return workflow.id


def over_budget(connection: Connection, workflow_id: uuid.UUID) -> bool:
    """Whether the workflow's steps have spent its budget (one aggregate; the heartbeat of
    each running step asks)."""
    tokens = func.coalesce(func.sum(Task.input_tokens + Task.output_tokens
                                    + Task.cache_creation_input_tokens), 0)
    cost = func.coalesce(func.sum(Task.cost_usd), 0)
    row = connection.execute(
        select(Workflow.token_budget, Workflow.budget_usd, tokens.label("tokens"),
               cost.label("cost"))
        .select_from(Workflow).join(Task, Task.workflow_id == Workflow.id)
        .where(Workflow.id == workflow_id,
               (Workflow.token_budget.is_not(None)) | (Workflow.budget_usd.is_not(None)))
        .group_by(Workflow.id)).first()
    if row is None:
        return False
    return ((row.token_budget is not None and row.tokens >= row.token_budget)
            or (row.budget_usd is not None and float(row.cost) >= row.budget_usd))


def lock_workflow(connection: Connection, workflow_id: uuid.UUID) -> Workflow | None:
    """The workflow, its row locked until the transaction ends (None if it does not exist)."""
    row = connection.execute(select(*WORKFLOW_COLUMNS).where(Workflow.id == workflow_id)
                             .with_for_update()).first()
    return None if row is None else workflow_of(row)


def running_workflows(connection: Connection) -> list[uuid.UUID]:
    """The ids of the workflows not yet ended (the sweep advances each)."""
    return list(connection.scalars(select(Workflow.id).where(Workflow.status == RUNNING)
                                   .order_by(Workflow.created_at)))


def dependency_results(connection: Connection, task: Task) -> list[Task]:
    """The steps ``task`` depends on, in its order, with their results."""
    found = {t.id: t for t in (tasks.detached(row) for row in connection.execute(
        select(*tasks.TASK_COLUMNS).where(Task.id.in_(task.depends_on or ()))))}
    return [found[dep] for dep in task.depends_on or () if dep in found]


def count_by_status(connection: Connection) -> dict[str, int]:
    rows = connection.execute(select(Workflow.status, func.count()).group_by(Workflow.status))
    return {status: count for status, count in rows}


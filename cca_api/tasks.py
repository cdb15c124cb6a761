"""Task endpoints: submit, read, list, cancel, events, attempts."""

from __future__ import annotations

import hashlib
import json
from contextlib import suppress
from functools import partial
from typing import Any
from uuid import UUID

from flask import Blueprint, Response, current_app, request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from cca_api import live, operations
from cca_api.auth import Principal, current, require_role
from cca_api.narrowing import inherit_from_parent, permitted_values
from cca_api.operations import ANY_OBJECT, Answer, operation
from cca_api.resources import Resources
from cca_core.access.quotas import check_quotas
from cca_core.errors import Conflict, Forbidden, Invalid, NotFound
from cca_core.infra.db import autocommit, transaction
from cca_core.models import Task
from cca_core.names import branch_of
from cca_core.sessions.store import has_session
from cca_core.tasks import changes, forecast, store
from cca_core.tasks.schemas import (
    AttemptList,
    EventPage,
    TaskContinue,
    TaskCreate,
    TaskPage,
    TaskView,
    attempt_view,
    event_view,
    task_view,
)
from cca_core.tasks.status import ALL_STATUSES, TERMINAL_STATUSES, TaskStatus
from cca_core.tasks.submission import send
from cca_core.workflows import store as workflows
from cca_core.workflows import tree
from cca_core.workflows.advance import advance_and_send
from cca_core.workflows.coordination import COORDINATOR

bp = Blueprint("tasks", __name__, url_prefix="/api/v1/tasks")
IDEMPOTENCY_KEY_MAX = 200
MAX_EVENTS_PAGE = 1000


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str | None = Field(default=None, json_schema_extra={"enum": list(ALL_STATUSES)})
    role: str | None = Field(default=None, max_length=64)
    parent_id: UUID | None = None
    workflow_id: UUID | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=500)


class EventsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    after: int = Field(default=0, ge=0)
    # A page is read and serialized whole: a larger limit is a 422 naming ``limit``; callers
    # page on with ``after=next_after``.
    limit: int = Field(default=500, ge=1, le=MAX_EVENTS_PAGE)


def resources() -> Resources:
    return current_app.extensions["cca"]


@bp.post("")
@operation("Submit an agent task", TaskView, status=202, body=TaskCreate,
           errors=(400, 403, 409, 413, 415, 422),
           more={200: Answer(TaskView, "the task an Idempotency-Key already made")},
           headers={"Idempotency-Key": {"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX}})
def submit() -> tuple[dict[str, Any], int]:
    res = resources()
    principal = require_role("admin", "submitter")
    body = operations.body(TaskCreate)
    if principal.task_id is not None and str(body.parent_id) != principal.task_id:
        raise Forbidden("a task token may only submit children of its own task", field="parent_id")
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX:
        raise Invalid(f"Idempotency-Key must be 1..{IDEMPOTENCY_KEY_MAX} characters",
                      field="Idempotency-Key")
    view, created = create_task(res, principal, body, key)
    return view.model_dump(mode="json"), 202 if created else 200


def create_task(res: Resources, principal: Principal, body: TaskCreate,
                key: str | None = None) -> tuple[TaskView, bool]:
    """Insert and send a submitted task as ``principal`` (the API's and the dashboard's way);
    returns its view and whether it was made now (not found by its idempotency ``key``)."""
    values = {**submitted_values(body, res, principal), "owner": principal.tenant,
              "created_by": principal.name}
    coordinated = body.mode == "coordinate" or body.role == COORDINATOR
    if coordinated and body.parent_id is not None:
        raise Invalid("a coordinated task cannot be the child of another task", field="mode")
    # A child is counted and inserted under its parent's row lock, in one transaction; any
    # other task is one INSERT, which commits by itself (saving the BEGIN and COMMIT trips).
    in_transaction = body.parent_id or coordinated
    with res.engine.begin() if in_transaction else autocommit(res.engine) as connection:
        check_quotas(connection, principal.name, principal.quotas)
        if body.parent_id:
            parent = lock_parent(connection, str(body.parent_id), res, principal.scope())
            values["depth"] = parent.depth + 1
            if principal.task_id is not None:  # an agent's bridge: never wider than its task
                values.update(inherit_from_parent(body, parent, res.settings.agents))
        hashed = request_hash(body) if key else None
        if coordinated:
            values["token_budget"] = body.token_budget or res.settings.agents.tree_token_budget
            task, created = store.create_task(connection, {**values, **tree.COORDINATED},
                                              idempotency_key=key, request_hash=hashed)
            ready = tree.start(connection, task, res.settings.agents) if created else []
        else:
            task, created = store.create_task(connection, values, idempotency_key=key,
                                              request_hash=hashed)
            ready = [task]
    if created:
        for step in ready:
            send(res.celery, res.engine, step)
    elif task.status == TaskStatus.QUEUED and task.waiting_for is None and not coordinated:
        # A repeated key: the first request may have died between its row and its message
        # (an API process killed). Sending again costs a message at most: claims are conditional.
        send(res.celery, res.engine, task)
    view = task_view(task)
    if created and not coordinated:
        estimate = res.estimates.of(task.role, task.model)
        view = view.model_copy(update={"estimate": estimate, "warnings": forecast.warnings(
            estimate, task.token_budget, task.max_budget_usd, task.timeout_seconds)})
    return view, created


def request_hash(body: TaskCreate) -> str:
    """What a repeated Idempotency-Key must send again: the body as validated, canonical."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def submitted_values(body: TaskCreate, res: Resources, principal: Principal) -> dict[str, Any]:
    """The row to insert, within the key's limits. Raises Invalid, or Forbidden when a
    non-admin key asks for more permissions than its role grants or its limits allow."""
    return permitted_values(body, principal, res.settings.agents)


def lock_parent(connection: Connection, parent_id: str, res: Resources, scope: str | None) -> Task:
    """The parent of a new child, locked. Raises Invalid when the tree would grow deeper or
    wider than the fleet allows: agents that submit agents must not fan out unbounded."""
    agents = res.settings.agents
    try:
        parent, children = store.lock_parent(connection, parent_id)
        if scope is not None and parent.owner != scope:
            raise NotFound(parent_id)
    except NotFound:
        raise Invalid(f"parent task {parent_id} does not exist", field="parent_id") from None
    if parent.depth + 1 > agents.max_depth:
        raise Invalid(f"task tree too deep: a child of {parent_id} would be at depth "
                      f"{parent.depth + 1}, above agents.max_depth = {agents.max_depth}",
                      field="parent_id", code="depth_limit")
    if children >= agents.max_children_per_task:
        raise Invalid(f"task {parent_id} already has {children} children, the limit "
                      f"(agents.max_children_per_task)", field="parent_id", code="children_limit")
    return parent


def check_token_scope(connection: Connection, task_id: str, principal: Principal | None = None) -> None:
    """A task token sees its own task and its descendants only; others answer 404."""
    root = (principal or current()).task_id
    if root is not None and not store.in_subtree(connection, task_id, root):
        raise NotFound(f"task {task_id} not found")


# What a follow-up takes from the task it continues.
CONTINUED_FIELDS = ("role", "model", "priority", "permission_mode", "allowed_tools", "denied_tools",
                    "cwd", "repo", "push", "queue", "retries", "token_budget", "timeout_seconds",
                    "max_turns", "max_budget_usd")


@bp.post("/<task_id>/continue")
@operation("Continue a finished task: a new task that forks its session with a follow-up prompt",
           TaskView, status=202, body=TaskContinue, errors=(400, 403, 404, 409, 415, 422))
def continue_task(task_id: str) -> tuple[dict[str, Any], int]:
    res = resources()
    principal = require_role("admin", "submitter")
    if principal.task_id is not None:
        raise Forbidden("a task token cannot continue tasks; it may submit children of its own")
    store.parse_task_id(task_id)  # a malformed id is not found, whatever the body
    follow_up = operations.body(TaskContinue)
    with transaction(res.sessions) as session:
        connection = session.connection()
        source = store.get_task(connection, task_id, principal.scope())
        if source.status not in TERMINAL_STATUSES:
            raise Conflict(f"task {task_id} is {source.status}: only an ended task can be continued",
                           code="not_finished")
        if source.workflow_id is not None and source.step is None:
            raise Conflict(f"task {task_id} coordinated a tree; continue one of its tasks",
                           code="coordinated")
        if not has_session(connection, source.id):
            raise Conflict(f"task {task_id} has no stored session to continue (its agent never "
                           "started one)", code="no_session")
    inherited = {name: getattr(source, name) for name in CONTINUED_FIELDS}
    if source.repo is not None:  # the follow-up's branch starts where the source's ended
        inherited["base"] = branch_of(str(source.id))
    asked = follow_up.model_dump(exclude_unset=True, exclude_none=True)
    body = TaskCreate.model_validate({**inherited, **asked, "metadata": follow_up.metadata})
    values = {**submitted_values(body, res, principal), "owner": principal.tenant,
              "created_by": principal.name, "continues": source.id}
    with autocommit(res.engine) as connection:
        check_quotas(connection, principal.name, principal.quotas)
        task, _ = store.create_task(connection, values)
    send(res.celery, res.engine, task)
    return task_view(task).model_dump(mode="json"), 202


@bp.get("/<task_id>/diff")
@operation("What a repository task's branch holds over its base: commits, diff stat, the diff "
           "(cut at 1 MB) and the push", ANY_OBJECT, errors=(404,))
def diff(task_id: str) -> dict[str, Any]:
    with transaction(resources().sessions) as session:
        connection = session.connection()
        check_token_scope(connection, task_id)
        found = changes.load(connection, task_id, current().scope())
    return {"task_id": task_id, **found, "updated_at": found["updated_at"].isoformat()}


@bp.get("/<task_id>")
@operation("Get a task (a coordinated task with its tree's usage, turns and cost)", TaskView,
           errors=(404,))
def show(task_id: str) -> dict[str, Any]:
    with transaction(resources().sessions) as session:
        return read_task(session.connection(), task_id, current()).model_dump(mode="json")


def read_task(connection: Connection, task_id: str, principal: Principal) -> TaskView:
    """The task as ``principal`` may see it (a coordinated task with its tree's usage)."""
    check_token_scope(connection, task_id, principal)
    task = store.get_task(connection, task_id, principal.scope())
    children = store.child_ids(connection, task.id)
    if task.workflow_id is not None and task.step is None:  # a coordinated task
        _, steps = workflows.get_workflow(connection, str(task.workflow_id))
        task = store.with_usage_of(task, steps)
    return task_view(task, children=children)


class StreamQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    after: int | None = Field(default=None, ge=0, description="resume after this event id "
                              "(the Last-Event-ID header does the same)")


@bp.get("/<task_id>/stream")
@operation("Follow a task live (Server-Sent Events): recorded events after the cursor, then "
           "new ones, its status changes, heartbeats; ends after a terminal status",
           live.STREAM_ANSWER, media=live.STREAM_MEDIA, query=StreamQuery, errors=(404, 422, 503))
def stream(task_id: str) -> Response:
    res, principal = resources(), current()
    query = operations.query(StreamQuery)
    cursor = query.after if query.after is not None else last_event_id()
    with transaction(res.sessions) as session:  # 404 before the stream starts
        read_task(session.connection(), task_id, principal)
    return live.stream_response(live.follow_task(
        res, task_id, cursor, principal.scope(),
        lambda connection: read_task(connection, task_id, principal)))


def last_event_id() -> int:
    value = request.headers.get("Last-Event-ID", "").strip() or "0"
    if not value.isdigit():
        raise Invalid("Last-Event-ID: must be an event id (a whole number)", field="Last-Event-ID")
    return int(value)


@bp.get("")
@operation("List tasks, newest first", TaskPage, query=ListQuery, errors=(422,))
def index() -> dict[str, Any]:
    query = operations.query(ListQuery)
    if query.status is not None and query.status not in ALL_STATUSES:
        raise Invalid(f"status must be one of {', '.join(ALL_STATUSES)}", field="status")
    parent_id = str(query.parent_id) if query.parent_id else current().task_id
    with transaction(resources().sessions) as session:
        connection = session.connection()
        if parent_id is not None:  # a task token lists the children of a task it sees
            check_token_scope(connection, parent_id)
        tasks, cursor = store.list_tasks(connection, status=query.status, role=query.role,
                                         parent_id=parent_id, owner=current().scope(),
                                         workflow_id=str(query.workflow_id) if query.workflow_id
                                         else None,
                                         limit=query.limit, cursor=query.cursor)
    page = TaskPage(tasks=[task_view(task) for task in tasks], next_cursor=cursor)
    return page.model_dump(mode="json")


@bp.post("/<task_id>/cancel")
@operation("Cancel a task", TaskView, errors=(404, 409))
def cancel(task_id: str) -> dict[str, Any]:
    """A step of a workflow cancelled alone counts as a step that failed: its workflow's
    policy decides what happens to the others. Cancelling a coordinated task cancels its
    tree."""
    res = resources()
    scope = require_role("admin", "submitter").scope()
    with transaction(res.sessions) as session:
        connection = session.connection()
        check_token_scope(connection, task_id)
        task = store.cancel_task(connection, task_id, scope)
    if task.workflow_id is not None:
        if task.step is None:  # a coordinated task: cancel its whole tree
            with suppress(Conflict), res.engine.begin() as connection:
                workflows.request_cancel(connection, str(task.workflow_id))
        advance_and_send(res.engine, partial(send, res.celery, res.engine), task.workflow_id,
                         res.settings.agents)
        with transaction(res.sessions) as session:
            task = store.get_task(session.connection(), task_id)
    return task_view(task).model_dump(mode="json")


@bp.get("/<task_id>/events")
@operation("Events recorded so far, in order", EventPage, query=EventsQuery, errors=(404, 422))
def events(task_id: str) -> dict[str, Any]:
    query = operations.query(EventsQuery)
    with transaction(resources().sessions) as session:
        connection = session.connection()
        check_token_scope(connection, task_id)
        rows = store.list_events(connection, task_id, after=query.after, limit=query.limit,
                                 max_bytes=live.MAX_EVENTS_PAGE_BYTES, owner=current().scope())
        page = EventPage(events=[event_view(row) for row in rows],
                         next_after=rows[-1].id if rows else None)
    return page.model_dump(mode="json")


@bp.get("/<task_id>/attempts")
@operation("Every run of the task: where, how it ended, what it spent, when it was retried",
           AttemptList, errors=(404,))
def attempts(task_id: str) -> dict[str, Any]:
    with transaction(resources().sessions) as session:
        connection = session.connection()
        check_token_scope(connection, task_id)
        rows = store.list_attempts(connection, task_id, owner=current().scope())
        return AttemptList(attempts=[attempt_view(row) for row in rows]).model_dump(mode="json")

"""All SQL about tasks and their events. Every status change goes through here.

Every function takes a SQLAlchemy Core ``Connection`` first and never commits: the caller owns
the transaction (``transaction(sessions)`` then ``session.connection()`` in the API, an
autocommit connection in the worker, where each statement commits itself). Tasks come back
detached (no Session tracks them), events as rows. Status changes are conditional updates
named by their transition (``cca_core.tasks.status``), so a redelivered message, a late worker
or a cancelled row can never produce a second run or a second terminal status.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Integer,
    Interval,
    Row,
    Table,
    and_,
    bindparam,
    case,
    column,
    delete,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import configure_mappers

from cca_core.errors import Conflict, Invalid, NotFound
from cca_core.infra.pgsafe import escape_nul
from cca_core.models import Task, TaskAttempt, TaskEvent
from cca_core.tasks import totals
from cca_core.tasks.outcome import Outcome
from cca_core.tasks.status import (
    CREDENTIAL,
    PARKED,
    RETRY,
    TERMINAL_STATUSES,
    USAGE_WINDOW,
    TaskStatus,
    changing,
)

QUEUED, RUNNING = TaskStatus.QUEUED, TaskStatus.RUNNING
CANCELLED, FAILED = TaskStatus.CANCELLED, TaskStatus.FAILED

NOW = func.now()
# Every column of a task, labelled with its attribute's name: a row of them read through a
# Connection becomes a detached Task (see ``_task``).
TASK_COLUMNS = [mapped.label(key) for key, mapped in Task.__mapper__.columns.items()]
_COLUMN_NAMES = {key: mapped.key for key, mapped in Task.__mapper__.columns.items()}
configure_mappers()  # in memory: what creating the first instance would do
_NEW_TASK = Task.__mapper__.class_manager.new_instance


def column_values(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` of Task attributes keyed by column name (``meta`` is the ``metadata``
    column), as parameters of a Core statement take them. Raises KeyError for a key that
    names no column, which such a statement would silently ignore."""
    return {_COLUMN_NAMES[key]: value for key, value in values.items()}


def detached(row: Row[Any]) -> Task:
    """A detached Task holding ``row`` (of ``TASK_COLUMNS``), its attributes set directly as
    the ORM's own loading does: ``Task(**row)`` fires an event per attribute and cost 20 times
    as much (0.044 ms)."""
    task = _NEW_TASK()
    task.__dict__.update(row._mapping)
    return task


@dataclass(frozen=True)
class Lease:
    """What a heartbeat learns: whether the run is still ours and whether to stop."""

    owned: bool
    cancel_requested: bool


def parse_task_id(value: str, what: str = "task") -> uuid.UUID:
    """Parse the id of a task (or of ``what``); a malformed one is simply not found."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"{what} {value} not found") from None


# The statements every task runs are built once, the row given as parameters: SQLAlchemy
# compiles each once (its compiled cache) instead of around each row's values.
_INSERT_TASK = insert(Task).values(sent_at=NOW).returning(*TASK_COLUMNS)
_INSERT_TASK_ONCE = (
    pg_insert(Task)
    .values(sent_at=NOW)
    .on_conflict_do_nothing(index_elements=["owner", "idempotency_key"],
                            index_where=text("idempotency_key IS NOT NULL"))
    .returning(*TASK_COLUMNS)
)


def create_task(
    connection: Connection, values: dict[str, Any], idempotency_key: str | None = None,
    request_hash: str | None = None,
) -> tuple[Task, bool]:
    """Insert a queued task; with an idempotency key its owner already used, return that
    owner's task instead (keys are per tenant: another tenant's same key makes its own task).

    Returns (task, created); the task is detached. Raises Conflict (``idempotency_mismatch``)
    when the key's task was made from another request (``request_hash`` differs).
    """
    row = column_values({"id": uuid.uuid4(), "status": QUEUED, **values})
    if idempotency_key is None:
        return detached(connection.execute(_INSERT_TASK, row).one()), True
    created = connection.execute(_INSERT_TASK_ONCE, {
        **row, "idempotency_key": idempotency_key, "request_hash": request_hash}).first()
    if created is not None:
        return detached(created), True
    existing = detached(connection.execute(
        select(*TASK_COLUMNS).where(Task.owner == values.get("owner"),
                                     Task.idempotency_key == idempotency_key)).one())
    if existing.request_hash != request_hash:
        raise Conflict(f"Idempotency-Key {idempotency_key} was used for another request "
                       f"(task {existing.id}); use a new key for a new task",
                       field="Idempotency-Key", code="idempotency_mismatch")
    return existing, False


def lock_parent(connection: Connection, parent_id: str) -> tuple[Task, int]:
    """Lock a parent task for adding a child; return it with its number of children.

    The row lock serialises concurrent submissions of children of the same parent.
    """
    parent = connection.execute(
        select(*TASK_COLUMNS).where(Task.id == parse_task_id(parent_id)).with_for_update()
    ).one_or_none()
    if parent is None:
        raise NotFound(f"parent task {parent_id} not found")
    children = connection.scalar(select(func.count()).where(Task.parent_id == parent.id)) or 0
    return detached(parent), children


def in_subtree(connection: Connection, task_id: str, root_id: str) -> bool:
    """Whether ``task_id`` is ``root_id`` or one of its descendants: walks up the parents of
    ``task_id`` (at most ``agents.max_depth`` + 1 rows, by primary key)."""
    start = select(Task.id, Task.parent_id).where(Task.id == parse_task_id(task_id))
    ancestors = start.cte("ancestors", recursive=True)
    ancestors = ancestors.union_all(
        select(Task.id, Task.parent_id).join(ancestors, Task.id == ancestors.c.parent_id))
    found = connection.scalar(select(func.count()).select_from(ancestors)
                              .where(ancestors.c.id == parse_task_id(root_id)))
    return bool(found)


def with_usage_of(task: Task, others: Sequence[Task]) -> Task:
    """A copy of ``task`` (detached) showing the usage, turns and cost of ``others`` summed:
    what a coordinated task presents of its tree (its row keeps none, so quotas and metrics
    count each run once)."""
    shown = detached_copy(task)
    for name in (*_SUMMED, "num_turns"):
        setattr(shown, name, sum(getattr(other, name) or 0 for other in others))
    return shown


def detached_copy(task: Task) -> Task:
    copy = _NEW_TASK()
    copy.__dict__.update({key: task.__dict__[key] for key in _COLUMN_NAMES if key in task.__dict__})
    return copy


MAX_CHILDREN_SHOWN = 100


def child_ids(connection: Connection, task_id: uuid.UUID) -> list[uuid.UUID]:
    """The ids of a task's children, oldest first (at most ``MAX_CHILDREN_SHOWN``; list
    tasks by ``parent_id`` for all)."""
    return list(connection.scalars(select(Task.id).where(Task.parent_id == task_id)
                                   .order_by(Task.created_at, Task.id).limit(MAX_CHILDREN_SHOWN)))


def get_task(connection: Connection, task_id: str | uuid.UUID, owner: str | None = None) -> Task:
    """Return the task; raise NotFound, also when ``owner`` is given and owns it not (so an id
    of another tenant leaks nothing)."""
    row = connection.execute(select(*TASK_COLUMNS)
                             .where(Task.id == parse_task_id(str(task_id)))).first()
    if row is None or (owner is not None and row.owner != owner):
        raise NotFound(f"task {task_id} not found")
    return detached(row)


def usage_today(connection: Connection, created_by: str) -> tuple[int, int, float]:
    """(active tasks, tokens, USD) of the tasks a key created since midnight UTC; tokens and
    cost are what the agents really spent (live while they run)."""
    midnight = func.date_trunc("day", func.timezone("UTC", NOW))
    active = connection.scalar(select(func.count()).where(
        Task.created_by == created_by, Task.status.not_in(TERMINAL_STATUSES))) or 0
    tokens, cost = connection.execute(select(
        func.coalesce(func.sum(Task.input_tokens + Task.output_tokens
                               + Task.cache_creation_input_tokens), 0),
        func.coalesce(func.sum(Task.cost_usd), 0),
    ).where(Task.created_by == created_by,
            func.timezone("UTC", Task.created_at) >= midnight)).one()
    return int(active), int(tokens), float(cost)


def list_tasks(
    connection: Connection,
    *,
    status: str | None = None,
    role: str | None = None,
    parent_id: str | None = None,
    workflow_id: str | None = None,
    owner: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Task], str | None]:
    """Newest first, keyset-paginated, of one owner when given. Returns (tasks, next_cursor)."""
    query = select(*TASK_COLUMNS).order_by(Task.created_at.desc(), Task.id.desc()).limit(limit + 1)
    if owner is not None:
        query = query.where(Task.owner == owner)
    if status:
        query = query.where(Task.status == status)
    if role:
        query = query.where(Task.role == role)
    if parent_id:
        query = query.where(Task.parent_id == parse_task_id(parent_id))
    if workflow_id:
        query = query.where(Task.workflow_id == parse_task_id(workflow_id))
    if cursor:
        created_at, last_id = decode_cursor(cursor)
        query = query.where(tuple_(Task.created_at, Task.id) < tuple_(created_at, last_id))
    tasks = [detached(row) for row in connection.execute(query)]
    if len(tasks) <= limit:
        return tasks, None
    last = tasks[limit - 1]
    return tasks[:limit], encode_cursor(last.created_at, last.id)


def encode_cursor(created_at: datetime, task_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{task_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Raise Invalid (field ``cursor``) for anything this module did not produce."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, task_id = raw.split("|")
        return datetime.fromisoformat(created_at), uuid.UUID(task_id)
    except (ValueError, UnicodeDecodeError):
        raise Invalid("cursor is not valid; pass next_cursor from a previous page",
                      field="cursor") from None


def cancel_task(connection: Connection, task_id: str, owner: str | None = None) -> Task:
    """Cancel a queued task at once, or ask a running one to stop.

    Raises NotFound (also for another owner's task), or Conflict when the task already ended.
    """
    tid = get_task(connection, task_id, owner).id
    queued = connection.execute(
        update(Task)
        .where(Task.id == tid, Task.status == changing(QUEUED, CANCELLED))
        .values(status=CANCELLED, finished_at=NOW, cancel_requested_at=NOW,
                error_code="cancelled", error_message="cancelled before it started")
        .returning(*TASK_COLUMNS)
    ).one_or_none()
    if queued is not None:
        return detached(queued)
    running = connection.execute(
        update(Task)
        .where(Task.id == tid, Task.status == RUNNING)
        .values(cancel_requested_at=func.coalesce(Task.cancel_requested_at, NOW))
        .returning(*TASK_COLUMNS)
    ).one_or_none()
    if running is not None:
        return detached(running)
    task = get_task(connection, task_id)
    raise Conflict(f"task {task_id} already ended as {task.status}", code="already_finished")


# A run reports what it spent itself; the row keeps the sum over the task's attempts, so a
# task re-run after its worker died shows (and counts against quotas) what both runs cost.
_SUMMED = ("input_tokens", "output_tokens", "cache_read_input_tokens",
           "cache_creation_input_tokens", "cost_usd")


def _plus_earlier(name: str, value: Any) -> Any:
    """What to write to usage column ``name`` for a run that spent ``value``."""
    return getattr(Task, f"earlier_{name}") + value if name in _SUMMED else value


# The statements every run executes are built once, with bound parameters.
_CLAIMED = (
    update(Task)
    .where(Task.id == bindparam("claim_id"),
           (Task.status == changing(QUEUED, RUNNING))
           | ((Task.status == changing(RUNNING, RUNNING)) & (Task.lease_expires_at < NOW)),
           Task.cancel_requested_at.is_(None), Task.waiting_for.is_(None),
           Task.attempts - Task.retried < bindparam("claim_max_attempts"))
    .values(status=RUNNING, worker=bindparam("claim_worker"), worker_pid=bindparam("claim_pid"),
            attempts=Task.attempts + 1, started_at=NOW, retry_at=None,
            lease_expires_at=NOW + bindparam("claim_lease", type_=Interval),
            **{f"earlier_{name}": getattr(Task, name) for name in _SUMMED})
    .returning(*TASK_COLUMNS)
    .cte("claimed")
)
# The claim and its attempt's row in one statement: one round trip before the agent starts.
_CLAIM = select(*_CLAIMED.c).add_cte(
    pg_insert(TaskAttempt)
    .from_select(["task_id", "attempt", "worker"],
                 select(_CLAIMED.c.id, _CLAIMED.c.attempts, _CLAIMED.c.worker),
                 include_defaults=False)  # the server's: the ORM's would be unbound here
    .on_conflict_do_nothing()
    .cte("attempt"))
# A run's events go in as one JSON array, in its order: one statement however many there
# are (an executemany costs a pipeline round of its own), and one that can ride along with
# the finishing UPDATE.
_EVENT = (func.jsonb_array_elements(bindparam("events", type_=JSONB))
          .table_valued(column("value", JSONB), with_ordinality="n").render_derived(name="e"))
_INSERT_EVENTS = insert(cast(Table, TaskEvent.__table__)).from_select(
    ["task_id", "attempt", "type", "subtype", "data"],
    select(bindparam("events_task_id", type_=PG_UUID(as_uuid=True)),
           bindparam("events_attempt", type_=Integer),
           func.coalesce(_EVENT.c.value["type"].astext, "unknown"),
           _EVENT.c.value["subtype"].astext, _EVENT.c.value)
    .order_by(_EVENT.c.n),
)
# A run stopped by a requested cancel ends with the cancel's code when it has one (a workflow
# stopped it: dependency_failed, budget_exceeded), so it says why.
_ERROR_CODE = case(
    (and_(bindparam("outcome_status") == CANCELLED, Task.cancel_code.is_not(None)),
     Task.cancel_code),
    else_=bindparam("outcome_error_code"))
# Each run's row in task_attempts, written as it ends (it rides along with the statement that
# ends the run): how it ended, what it spent, when it is retried.
_ATTEMPT_VALUES = {
    "task_id": bindparam("finish_id"), "attempt": bindparam("finish_attempt"), "finished_at": NOW,
    **{name: bindparam(f"outcome_{name}") for name in (
        "status", "error_code", "error_message", *_SUMMED, "num_turns", "session_id")},
}


def _attempt_end(retry_at: Any) -> Any:
    values = {**_ATTEMPT_VALUES, "retry_at": retry_at}
    upsert = pg_insert(TaskAttempt).values(values)
    return upsert.on_conflict_do_update(
        index_elements=[TaskAttempt.task_id, TaskAttempt.attempt],
        set_={name: upsert.excluded[name] for name in values if name not in ("task_id", "attempt")})


# The terminal status and the run's last events in one statement: atomic on its own, so one
# round trip instead of BEGIN, two statements and COMMIT.
_FINISH = (
    update(Task)
    .where(Task.id == bindparam("finish_id"), Task.status == RUNNING,
           Task.attempts == bindparam("finish_attempt"))
    .values({**{name: _plus_earlier(name, bindparam(f"outcome_{name}"))
                for name in Outcome.__dataclass_fields__},
             "error_code": _ERROR_CODE, "finished_at": NOW, "lease_expires_at": None})
    .returning(Task.id)
    .add_cte(_INSERT_EVENTS.cte("last_events"))
    .add_cte(_attempt_end(None).cte("attempt_end"))
)
# A failed run its retry policy runs again: back to queued, parked until retry_at (the sweep
# sends it then), what it spent added to the task's usage, its error shown meanwhile.
_RETRY = (
    update(Task)
    .where(Task.id == bindparam("finish_id"), Task.status == changing(RUNNING, QUEUED),
           Task.attempts == bindparam("finish_attempt"), Task.cancel_requested_at.is_(None))
    .values({**{name: _plus_earlier(name, bindparam(f"outcome_{name}"))
                for name in (*_SUMMED, "num_turns", "session_id", "error_code", "error_message")},
             "status": QUEUED, "waiting_for": bindparam("waiting_for"), "retry_at": bindparam("retry_at"),
             "retried": Task.retried + 1, "lease_expires_at": None})
    .returning(Task.id)
    .add_cte(_INSERT_EVENTS.cte("last_events"))
    .add_cte(_attempt_end(bindparam("retry_at")).cte("attempt_end"))
)


def claim_task(
    connection: Connection, task_id: str, *, worker: str, pid: int, lease_s: int,
    max_attempts: int,
) -> Task | None:
    """Take a queued task, or a running one whose lease expired, for one run.

    Returns the claimed task (detached), or None when another run owns it, it ended, it was
    cancelled or it used up its attempts.
    """
    claimed = connection.execute(_CLAIM, {
        "claim_id": parse_task_id(task_id), "claim_max_attempts": max_attempts,
        "claim_worker": worker, "claim_pid": pid, "claim_lease": timedelta(seconds=lease_s),
    }).first()
    return None if claimed is None else detached(claimed)


def renew_lease(
    connection: Connection, task_id: str, attempt: int, lease_s: int,
    progress: dict[str, Any] | None = None,
) -> Lease:
    """Extend the lease of a run and record its progress (tokens, turns, cost so far, added
    to what earlier attempts spent); tell whether it is still ours and whether to stop."""
    cancel_requested_at = connection.execute(
        update(Task)
        .where(Task.id == parse_task_id(task_id), Task.status == RUNNING, Task.attempts == attempt)
        .values(lease_expires_at=NOW + timedelta(seconds=lease_s),
                **{name: _plus_earlier(name, value) for name, value in (progress or {}).items()})
        .returning(Task.cancel_requested_at)
    ).one_or_none()
    if cancel_requested_at is None:
        return Lease(owned=False, cancel_requested=True)
    return Lease(owned=True, cancel_requested=cancel_requested_at[0] is not None)


def finish_task(connection: Connection, task_id: str, attempt: int, outcome: Outcome,
                events: Sequence[dict[str, Any]] = ()) -> bool:
    """Record the one terminal status of a run (its usage added to what earlier attempts
    spent) and, in the same statement, its last ``events``. False if the run no longer
    owned the task (the events are recorded all the same)."""
    changing(RUNNING, outcome.status)  # _FINISH updates running rows only
    return connection.execute(_FINISH, _end_values(task_id, attempt, outcome, events)).first() is not None


def retry_task(connection: Connection, task_id: str, attempt: int, outcome: Outcome,
               retry_at: datetime, events: Sequence[dict[str, Any]] = (), *,
               waiting_for: str = RETRY) -> bool:
    """Park a task whose run failed until ``retry_at``, when the sweep sends it again (see
    :func:`release_due_retries`); the run's usage, error and last ``events`` are recorded as
    :func:`finish_task` would. False if the run no longer owned the task or a cancel was
    requested: then it must be finished instead."""
    values = {**_end_values(task_id, attempt, outcome, events), "retry_at": retry_at,
              "waiting_for": waiting_for}
    return connection.execute(_RETRY, values).first() is not None


def _end_values(task_id: str, attempt: int, outcome: Outcome,
                events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"finish_id": parse_task_id(task_id), "finish_attempt": attempt,
            **{f"outcome_{name}": escape_nul(getattr(outcome, name))
               for name in Outcome.__dataclass_fields__},
            **_event_values(task_id, attempt, events)}


def release_due_retries(connection: Connection) -> list[Task]:
    """The parked tasks whose time is due, made sendable (marked sent now)."""
    return [detached(row) for row in connection.execute(
        update(Task)
        .where(Task.status == QUEUED, Task.waiting_for.in_(PARKED), Task.retry_at <= NOW)
        .values(waiting_for=None, sent_at=NOW)
        .returning(*TASK_COLUMNS)
    )]


def park_unclaimed(connection: Connection, task_id: str, waiting_for: str, until: datetime) -> bool:
    """Park a queued task this delivery does not claim (no attempt is spent: no credential
    has room, or the worker is over its token budget) until ``until``, waiting for
    ``waiting_for``. False if it is not a plain queued task (any more)."""
    return connection.execute(
        update(Task)
        .where(Task.id == parse_task_id(task_id), Task.status == QUEUED, Task.waiting_for.is_(None),
               Task.cancel_requested_at.is_(None))
        .values(waiting_for=waiting_for, retry_at=until)
        .returning(Task.id)
    ).first() is not None


def release_credential_waits(connection: Connection, limit: int) -> list[Task]:
    """Up to ``limit`` tasks parked for a credential or a usage window, earliest due first,
    made sendable now: a credential was given back."""
    waiting = (select(Task.id)
               .where(Task.status == QUEUED, Task.waiting_for.in_((CREDENTIAL, USAGE_WINDOW)))
               .order_by(Task.retry_at).limit(limit).with_for_update(skip_locked=True))
    return [detached(row) for row in connection.execute(
        update(Task).where(Task.id.in_(waiting.scalar_subquery()))
        .values(waiting_for=None, sent_at=NOW).returning(*TASK_COLUMNS)
    )]


def list_attempts(connection: Connection, task_id: str, owner: str | None = None) -> list[Row[Any]]:
    """Every run of a task so far, first first."""
    tid = get_task(connection, task_id, owner).id
    return list(connection.execute(
        select(TaskAttempt).where(TaskAttempt.task_id == tid).order_by(TaskAttempt.attempt)))


def expire_task(connection: Connection, task_id: str) -> bool:
    """End a queued task whose message expired before a worker took it. False if it was not
    queued any more."""
    expired = connection.execute(
        update(Task)
        .where(Task.id == parse_task_id(task_id), Task.status == changing(QUEUED, CANCELLED))
        .values(status=CANCELLED, finished_at=NOW, error_code="expired",
                error_message="its fire expired before a worker took it")
        .returning(Task.id)
    ).one_or_none()
    return expired is not None


def append_events(
    connection: Connection, task_id: str, attempt: int, events: Sequence[dict[str, Any]]
) -> list[tuple[int, datetime]]:
    """Persist stream-json events in order; returns each one's (id, created_at), in order."""
    if not events:
        return []
    rows = connection.execute(_INSERT_EVENTS.returning(TaskEvent.id, TaskEvent.created_at),
                              _event_values(task_id, attempt, events))
    return sorted((row.id, row.created_at) for row in rows)  # ids are given in insert order


def recorded_events(connection: Connection, task_id: str, attempt: int, after: int,
                    limit: int) -> list[tuple[int, datetime]]:
    """The (id, created_at) of an attempt's events after id ``after``, oldest first."""
    rows = connection.execute(
        select(TaskEvent.id, TaskEvent.created_at)
        .where(TaskEvent.task_id == parse_task_id(task_id), TaskEvent.attempt == attempt,
               TaskEvent.id > after)
        .order_by(TaskEvent.id).limit(limit))
    return [(row.id, row.created_at) for row in rows]


def _event_values(task_id: str, attempt: int, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"events_task_id": parse_task_id(task_id), "events_attempt": attempt,
            "events": escape_nul(list(events))}


def list_events(
    connection: Connection, task_id: str, *, after: int = 0, limit: int = 500, owner: str | None = None,
    max_bytes: int | None = None,
) -> list[Row[Any]]:
    """Events of a task recorded so far, oldest first, with ids above ``after``: at most
    ``limit``, and with ``max_bytes`` no more once that much event data (as stored) is read
    (always at least one event, so a reader paging on ``after`` moves forward)."""
    get_task(connection, task_id, owner)
    size = func.pg_column_size(TaskEvent.data)  # the stored size: reads no TOASTed value
    page = (
        select(TaskEvent.id, (func.sum(size).over(order_by=TaskEvent.id) - size).label("before"))
        .where(TaskEvent.task_id == parse_task_id(task_id), TaskEvent.id > after)
        .order_by(TaskEvent.id)
        .limit(limit)
        .subquery()
    )
    query = (select(*cast(Table, TaskEvent.__table__).c).join(page, page.c.id == TaskEvent.id)
             .order_by(TaskEvent.id))
    if max_bytes is not None:
        query = query.where((page.c.before < max_bytes) | (page.c.before == 0))
    return list(connection.execute(query))


def mark_unsent(connection: Connection, task_id: str) -> None:
    """A queued task whose message Redis could not take: the sweep's next turn sends it."""
    connection.execute(update(Task).where(Task.id == parse_task_id(task_id), Task.status == QUEUED)
                       .values(sent_at=None))


def resend_candidates(connection: Connection, resend_after_s: int, held: Collection[str] = (),
                      untaken: Collection[str] = (), short: Collection[str] = ()) -> list[Task]:
    """Tasks whose message may be lost: queued unsent (:func:`mark_unsent`), too long in a
    queue ``short`` of messages (:func:`waiting_by_queue`), or ``untaken`` (its message taken
    by a worker that died before claiming it: ``cca_core.tasks.deliveries``), or running with
    an expired lease (unless ``held``: its run waits for Postgres).

    Marks them as sent now, so each is re-sent at most once per ``resend_after_s``.
    """
    overdue = ((Task.status == QUEUED) & Task.waiting_for.is_(None)
               & (Task.sent_at.is_(None)
                  | ((Task.sent_at < NOW - timedelta(seconds=resend_after_s)) & Task.queue.in_(list(short)))
                  | Task.id.in_(_ids(untaken))))
    orphaned = (
        (Task.status == RUNNING)
        & (Task.lease_expires_at < NOW)
        & (Task.sent_at < NOW - timedelta(seconds=1))
        & Task.id.not_in(_ids(held))
    )
    return [detached(row) for row in connection.execute(
        update(Task).where(overdue | orphaned, Task.cancel_requested_at.is_(None))
        .values(sent_at=NOW).returning(*TASK_COLUMNS)
    )]


def waiting_by_queue(connection: Connection, taken: Collection[str]) -> dict[str, int]:
    """How many tasks wait for their sent message in each queue (queued, sent, not parked),
    leaving out the ``taken`` ones (a worker holds their message)."""
    return dict(connection.execute(
        select(Task.queue, func.count())
        .where(Task.status == QUEUED, Task.waiting_for.is_(None), Task.sent_at.is_not(None),
               Task.id.not_in(_ids(taken)))
        .group_by(Task.queue)).all())


def queued_among(connection: Connection, task_ids: Collection[str]) -> set[str]:
    """Which of ``task_ids`` wait in a queue for a worker (queued, not parked)."""
    if not task_ids:
        return set()
    return {str(task_id) for task_id in connection.scalars(
        select(Task.id).where(Task.id.in_(_ids(task_ids)), Task.status == QUEUED,
                              Task.waiting_for.is_(None)))}


def end_abandoned(connection: Connection, max_attempts: int,
                  held: Collection[str] = ()) -> list[uuid.UUID]:
    """End runs whose worker died and that cannot run again: cancelled, or out of attempts.
    A ``held`` task's run is not dead: it waits for Postgres."""
    lost = (Task.lease_expires_at < NOW) & Task.id.not_in(_ids(held))
    cancelled = connection.scalars(
        update(Task).where(Task.status == changing(RUNNING, CANCELLED), lost,
                           Task.cancel_requested_at.is_not(None))
        .values(status=CANCELLED, finished_at=NOW, lease_expires_at=None,
                error_code=func.coalesce(Task.cancel_code, "cancelled"),
                error_message="cancelled while its worker was lost")
        .returning(Task.id)
    ).all()
    exhausted = connection.scalars(
        update(Task).where(Task.status == changing(RUNNING, FAILED), lost,
                           Task.attempts - Task.retried >= max_attempts)
        .values(status=FAILED, finished_at=NOW, lease_expires_at=None, error_code="worker_lost",
                error_message=f"its worker died on each of {max_attempts} attempts")
        .returning(Task.id)
    ).all()
    return [*cancelled, *exhausted]


def _ids(task_ids: Collection[str]) -> list[uuid.UUID]:
    return [parse_task_id(task_id) for task_id in task_ids]


def count_by_status(connection: Connection) -> dict[str, int]:
    """Every task, counted by status, without a scan (``cca_core.tasks.totals``)."""
    return totals.by_status(totals.snapshot(connection))


def running_by_worker(connection: Connection) -> dict[str, int]:
    rows = connection.execute(
        select(Task.worker, func.count()).where(Task.status == RUNNING).group_by(Task.worker)
    )
    return {worker: count for worker, count in rows if worker}


def delete_events_before(connection: Connection, cutoff: datetime, batch: int) -> int:
    """Delete up to ``batch`` of the oldest task events recorded before ``cutoff``; return how
    many. Reads only the first ``batch`` rows by id (event ids grow with time), so a batch
    costs the same on a table of any size and no index on ``created_at`` is needed."""
    oldest = connection.scalar(select(TaskEvent.created_at).order_by(TaskEvent.id).limit(1))
    if oldest is None or oldest >= cutoff:
        return 0
    head = select(TaskEvent.id, TaskEvent.created_at).order_by(TaskEvent.id).limit(batch).cte("head")
    result = connection.execute(delete(TaskEvent).where(
        TaskEvent.id.in_(select(head.c.id).where(head.c.created_at < cutoff))))
    return int(result.rowcount)  # type: ignore[attr-defined]

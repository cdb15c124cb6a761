"""The stored checkpoint of each task's session (``task_sessions``): one row per task, the
latest wins."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, exists, func, select
from sqlalchemy.dialects.postgresql import insert

from cca_core.models import TaskSession


@dataclass(frozen=True)
class Checkpoint:
    """A session as stored: ``transcript`` is gzipped JSONL; ``workspace`` a gzipped tar of the
    task's own workspace, or None with ``workspace_note`` saying why it was not kept (a task
    in a ``cwd`` of its own needs none)."""

    session_id: str
    attempt: int
    transcript: bytes
    workspace: bytes | None
    workspace_note: str | None


def save(connection: Connection, task_id: uuid.UUID, checkpoint: Checkpoint) -> None:
    """Store the task's latest checkpoint (replacing the one before)."""
    values = {"task_id": task_id, "session_id": checkpoint.session_id,
              "attempt": checkpoint.attempt, "transcript": checkpoint.transcript,
              "workspace": checkpoint.workspace, "workspace_note": checkpoint.workspace_note}
    upsert = insert(TaskSession).values(values)
    connection.execute(upsert.on_conflict_do_update(
        index_elements=[TaskSession.task_id],
        set_={**{name: upsert.excluded[name] for name in values if name != "task_id"},
              "updated_at": func.now()}))


def load(connection: Connection, task_id: uuid.UUID) -> Checkpoint | None:
    """The task's latest checkpoint, if it has one."""
    row = connection.execute(
        select(TaskSession.session_id, TaskSession.attempt, TaskSession.transcript,
               TaskSession.workspace, TaskSession.workspace_note)
        .where(TaskSession.task_id == task_id)).one_or_none()
    return None if row is None else Checkpoint(*row)


def delete_before(connection: Connection, cutoff: datetime, batch: int) -> int:
    """Delete up to ``batch`` stored sessions last updated before ``cutoff``; return how many."""
    stale = select(TaskSession.task_id).where(TaskSession.updated_at < cutoff).limit(batch)
    result = connection.execute(delete(TaskSession).where(TaskSession.task_id.in_(stale)))
    return int(result.rowcount)  # type: ignore[attr-defined]


def has_session(connection: Connection, task_id: uuid.UUID) -> bool:
    return bool(connection.scalar(select(exists().where(TaskSession.task_id == task_id))))

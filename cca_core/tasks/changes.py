"""What a repository task's branch holds over its base: recorded by the worker when a run
ends (cca_worker.repos), read by ``GET /api/v1/tasks/{id}/diff``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from cca_core.errors import NotFound
from cca_core.models import TaskChanges
from cca_core.tasks.store import get_task


@dataclass(frozen=True)
class Changes:
    branch: str
    base: str
    head: str
    commits: list[dict[str, str]]
    files: int
    insertions: int
    deletions: int
    diff: str
    truncated: bool
    pushed: bool | None = None  # None: not asked to push
    push_error: str | None = None


def record(connection: Connection, task_id: str, changes: Changes) -> None:
    values = asdict(changes)
    upsert = pg_insert(TaskChanges).values(task_id=task_id, **values)
    connection.execute(upsert.on_conflict_do_update(
        index_elements=[TaskChanges.task_id],
        set_={**{name: upsert.excluded[name] for name in values}, "updated_at": upsert.excluded.updated_at}))


def load(connection: Connection, task_id: str, owner: str | None = None) -> dict[str, Any]:
    """The recorded changes of a task; NotFound when it has none (not a repository task, or
    no run of it ended yet)."""
    task = get_task(connection, task_id, owner)
    row = connection.execute(select(TaskChanges.__table__).where(TaskChanges.task_id == task.id)
                             ).mappings().first()
    if row is None:
        what = "is not a repository task" if task.repo is None else "has no ended run yet"
        raise NotFound(f"task {task_id} {what}: no changes recorded", code="no_changes")
    return {name: value for name, value in row.items() if name != "task_id"}

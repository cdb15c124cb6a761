"""Counts and sums over every task (by status, end reason, model and run time) at a cost that
does not grow with the table.

Tasks finished before a mark are folded into ``task_rollup``, one row per status, end reason,
model and duration bucket. A read adds the rows not folded yet: queued and running tasks and
those finished since the mark (an index range), in the same statement as the rollup, so a
fold committing meanwhile is counted once. The sweep folds (:func:`fold`) what finished more
than ``FOLD_LAG`` ago: a finish whose transaction began before a fold and committed after it
is not skipped. Terminal statuses are final, so a folded task never changes again. Without
folds (no worker running) reads stay right and only grow slower.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    case,
    func,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from cca_core.models import Task, TaskRollup, TaskRollupMark
from cca_core.tasks.status import TERMINAL_STATUSES

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)
NEVER_RAN = -1  # the bucket of a task with no run time (never started, or not finished)
FOLD_LAG = timedelta(seconds=60)
MAX_READS = 3  # of a snapshot, when folds keep moving the mark under it
NO_REASON = "none"
DEFAULT_MODEL = "default"


@dataclass(frozen=True)
class Group:
    """Tasks of one status, end reason, model and duration bucket, and what they spent."""

    status: str
    reason: str
    model: str
    bucket: int
    tasks: int
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    cost_usd: float
    seconds: float


KEYS = ("status", "reason", "model", "bucket")
SUMS = tuple(f.name for f in fields(Group) if f.name not in KEYS)

_SECONDS = func.extract("epoch", Task.finished_at - Task.started_at)
_BUCKET = case((Task.finished_at.is_(None) | Task.started_at.is_(None), NEVER_RAN),
               *[(bound >= _SECONDS, n) for n, bound in enumerate(DURATION_BUCKETS)],
               else_=len(DURATION_BUCKETS))
_KEY_COLUMNS: tuple[Any, ...] = (
    Task.status, func.coalesce(Task.error_code, NO_REASON), func.coalesce(Task.model, DEFAULT_MODEL),
    _BUCKET)
_MARK = select(TaskRollupMark.finished_before).where(TaskRollupMark.id == 1)


def _grouped(*where: ColumnElement[bool]) -> Select[Any]:
    sums: tuple[Any, ...] = (func.count(), func.sum(Task.input_tokens), func.sum(Task.output_tokens),
            func.sum(Task.cache_read_input_tokens), func.sum(Task.cache_creation_input_tokens),
            func.sum(Task.cost_usd), func.coalesce(func.sum(_SECONDS), 0))
    return (select(*(column.label(name) for column, name in zip(_KEY_COLUMNS, KEYS, strict=True)),
                   *(column.label(name) for column, name in zip(sums, SUMS, strict=True)))
            .where(*where).group_by(*_KEY_COLUMNS))


def fold(connection: Connection) -> int:
    """Fold the tasks that finished between the mark and ``FOLD_LAG`` ago into the rollup and
    move the mark; the number of groups written. One folder at a time (the mark's row lock)."""
    mark = connection.execute(_MARK.with_for_update()).scalar_one()
    upto = connection.execute(select(func.now() - FOLD_LAG)).scalar_one()
    if upto <= mark:
        return 0
    insert = pg_insert(TaskRollup).from_select(
        [*KEYS, *SUMS], _grouped(Task.finished_at >= mark, Task.finished_at < upto))
    insert = insert.on_conflict_do_update(
        index_elements=list(KEYS),
        set_={name: getattr(TaskRollup, name) + getattr(insert.excluded, name) for name in SUMS})
    written = len(connection.execute(insert.returning(TaskRollup.tasks)).all())
    connection.execute(update(TaskRollupMark).where(TaskRollupMark.id == 1).values(finished_before=upto))
    return written


def snapshot(connection: Connection) -> list[Group]:
    """Every task, grouped: the rollup plus the rows not folded yet, read in one statement
    (read again if a fold moved the mark meanwhile)."""
    folded = select(*(getattr(TaskRollup, name) for name in (*KEYS, *SUMS)))
    rows: list[Any] = []
    for _ in range(MAX_READS):
        mark = connection.execute(_MARK).scalar_one()
        # The mark in the SQL text, not a parameter: a generic plan would not know how few
        # rows are past it and scan the table.
        since: ColumnElement[Any] = literal_column(f"'{mark.isoformat()}'::timestamptz")
        both = union_all(folded, _grouped(or_(Task.finished_at.is_(None), Task.finished_at >= since)))
        rows = list(connection.execute(select(both.subquery(), _MARK.scalar_subquery().label("mark"))))
        if not rows or rows[0].mark == mark:
            break
    merged: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        key, values = tuple(row[:len(KEYS)]), row[len(KEYS):len(KEYS) + len(SUMS)]
        into = merged.setdefault(key, [0] * len(SUMS))
        for n, value in enumerate(values):
            into[n] += value or 0
    return [Group(*key, *(int(v) if isinstance(v, int) else float(v) for v in values))
            for key, values in merged.items()]


def by_status(groups: Iterable[Group]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for group in groups:
        counts[group.status] = counts.get(group.status, 0) + group.tasks
    return counts


def ended(groups: Iterable[Group]) -> dict[tuple[str, str], int]:
    """Finished tasks per (status, end reason)."""
    counts: dict[tuple[str, str], int] = {}
    for group in groups:
        if group.status in TERMINAL_STATUSES:
            key = (group.status, group.reason)
            counts[key] = counts.get(key, 0) + group.tasks
    return counts


def durations(groups: Iterable[Group]) -> tuple[list[int], float]:
    """The run-time histogram of finished tasks: cumulative counts per bound of
    ``DURATION_BUCKETS`` then +Inf, and the sum of their seconds."""
    per_bucket = [0] * (len(DURATION_BUCKETS) + 1)
    total = 0.0
    for group in groups:
        if group.bucket != NEVER_RAN:
            per_bucket[group.bucket] += group.tasks
            total += group.seconds
    cumulative, running = [], 0
    for count in per_bucket:
        running += count
        cumulative.append(running)
    return cumulative, total

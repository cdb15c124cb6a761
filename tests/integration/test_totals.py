"""Fleet totals without a scan (cca_core.tasks.totals) on real Postgres: the rollup plus the live
rows equal what a scan of every task says, before a fold, after it, and as tasks go on
finishing; a fold never counts a task twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update

from cca_core.infra.db import make_engine
from cca_core.models import Task, TaskRollup, TaskRollupMark
from cca_core.tasks import totals

pytestmark = pytest.mark.integration


def rows(n: int, status: str, *, ago_s: float | None, ran_s: float = 0, model: str | None = None,
         error: str | None = None) -> list[dict]:
    """``n`` tasks finished ``ago_s`` seconds ago (now: when the test runs, not when it was
    collected), having run ``ran_s`` seconds."""
    finished = datetime.now(UTC) - timedelta(seconds=ago_s) if ago_s is not None else None
    return [{"prompt": "p", "status": status, "token_budget": 10, "timeout_seconds": 60,
             "model": model, "error_code": error, "input_tokens": 10 + i, "output_tokens": 2,
             "cache_read_input_tokens": 1, "cache_creation_input_tokens": 3, "cost_usd": 0.25,
             "finished_at": finished,
             "started_at": finished - timedelta(seconds=ran_s) if finished and ran_s else None}
            for i in range(n)]


def scanned(connection) -> tuple[dict, tuple, dict, list]:
    """What a scan of every task says: counts, usage sums, end reasons, the histogram."""
    counts = dict(connection.execute(select(Task.status, func.count()).group_by(Task.status)).all())
    usage = connection.execute(select(func.sum(Task.input_tokens), func.sum(Task.output_tokens),
                                      func.sum(Task.cost_usd))).one()
    reasons = dict(((status, reason or "none"), count) for status, reason, count in connection.execute(
        select(Task.status, Task.error_code, func.count())
        .where(Task.status.in_(("succeeded", "failed", "cancelled")))
        .group_by(Task.status, Task.error_code)).all())
    seconds = func.extract("epoch", Task.finished_at - Task.started_at)
    histogram = [connection.scalar(select(func.count()).where(seconds <= bound))
                 for bound in totals.DURATION_BUCKETS]
    return counts, tuple(usage), reasons, histogram


def summed(groups) -> tuple[dict, tuple, dict, list]:
    usage = (sum(g.input_tokens for g in groups), sum(g.output_tokens for g in groups),
             sum(g.cost_usd for g in groups))
    cumulative, _ = totals.durations(groups)
    return totals.by_status(groups), usage, totals.ended(groups), cumulative[:-1]


def test_the_rollup_and_the_live_rows_add_up_to_a_scan(database_url):
    engine = make_engine(database_url, pool_size=1)
    with engine.begin() as connection:
        connection.execute(insert(Task), [
            *rows(5, "succeeded", ago_s=3600, ran_s=3, model="claude-haiku-4-5"),
            *rows(4, "failed", ago_s=7200, ran_s=400, error="timed_out"),
            *rows(3, "cancelled", ago_s=600, error="cancelled"),  # never ran
            *rows(2, "succeeded", ago_s=5, ran_s=20),  # too recent to fold
            *rows(3, "queued", ago_s=None), *rows(2, "running", ago_s=None)])
        before = scanned(connection)
        assert summed(totals.snapshot(connection)) == before
        assert totals.fold(connection) > 0
        assert connection.scalar(select(func.sum(TaskRollup.tasks))) == 12  # the 12 older ones
        assert summed(totals.snapshot(connection)) == before
        assert totals.fold(connection) == 0  # nothing new finished: nothing folded twice
        # Tasks go on: a running one finishes, new ones come.
        connection.execute(update(Task).where(Task.status == "running")
                           .values(status="succeeded", finished_at=func.now(),
                                   started_at=func.now() - timedelta(seconds=50)))
        connection.execute(insert(Task), rows(2, "failed", ago_s=120, ran_s=2, error="budget_exceeded"))
        # Rows stamped before the mark are never folded (a finish is stamped now(), and folds
        # lag FOLD_LAG behind): the mark goes back so that these two are.
        connection.execute(update(TaskRollupMark).values(
            finished_before=datetime.now(UTC) - timedelta(seconds=300)))
        totals.fold(connection)  # folds the two failures of 120 s ago, not the fresh finishes
        after = scanned(connection)
        assert after != before and summed(totals.snapshot(connection)) == after
    engine.dispose()

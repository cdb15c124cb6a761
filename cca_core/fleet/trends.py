"""The fleet over time, for the dashboard's plots: samples of queue depth and slot use (taken
by the workers), and tokens, dollars, statuses and durations of tasks (read from ``tasks``).

Each query is bounded: a window of hours ending now, hourly buckets, at most ``MAX_GROUPS``
groups (the rest summed as ``other``), scoped to a tenant (None: every tenant)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import redis
from sqlalchemy import Connection, delete, insert, select, text
from sqlalchemy.orm import Session

from cca_core.fleet.state import queue_depths, workers_with_slots
from cca_core.models import FleetSample

MAX_GROUPS = 8
GroupBy = Literal["role", "model", "key"]
_GROUP_COLUMNS: dict[str, str] = {"role": "coalesce(role, '(none)')",
                                  "model": "coalesce(model, '(default)')",
                                  "key": "coalesce(created_by, '(none)')"}
DURATION_BUCKETS_S = (10, 30, 60, 120, 300, 600, 1800, 3600)


def take_sample(session: Session, client: redis.Redis, queues: set[str]) -> None:
    """Record the fleet now: workers, slots busy and total, each queue's depth."""
    workers = workers_with_slots(client, session)
    names = queues | {queue for worker in workers for queue in worker["queues"]}
    session.execute(insert(FleetSample).values(
        workers=len(workers), slots_total=sum(w["slots_total"] for w in workers),
        slots_busy=sum(w["slots_busy"] for w in workers), queues=queue_depths(client, names)))


def samples(connection: Connection, hours: int) -> list[dict[str, Any]]:
    rows = connection.execute(select(FleetSample).where(
        FleetSample.at > text(f"now() - interval '{int(hours)} hours'")).order_by(FleetSample.at))
    return [{"at": row.at.isoformat(), "workers": row.workers, "slots_total": row.slots_total,
             "slots_busy": row.slots_busy, "queues": row.queues} for row in rows]


def delete_samples_before(connection: Connection, cutoff: datetime, limit: int) -> int:
    oldest = (select(FleetSample.at).where(FleetSample.at < cutoff).order_by(FleetSample.at)
              .limit(limit).scalar_subquery())
    return connection.execute(delete(FleetSample).where(FleetSample.at.in_(oldest))).rowcount


def spending(connection: Connection, owner: str | None, hours: int,
             by: GroupBy) -> list[dict[str, Any]]:
    """Tokens and dollars of the tasks that finished in each hour, by role, model or key."""
    group = _GROUP_COLUMNS[by]
    rows = connection.execute(text(f"""
        WITH finished AS (
          SELECT date_trunc('hour', finished_at) AS hour, {group} AS name,
                 input_tokens + output_tokens + cache_read_input_tokens
                   + cache_creation_input_tokens AS tokens, cost_usd
          FROM tasks
          WHERE finished_at > now() - make_interval(hours => :hours)
            AND (CAST(:owner AS text) IS NULL OR owner = :owner)),
        top AS (SELECT name FROM finished GROUP BY name ORDER BY sum(cost_usd) DESC, name LIMIT :groups)
        SELECT hour, CASE WHEN name IN (SELECT name FROM top) THEN name ELSE 'other' END AS name,
               sum(tokens) AS tokens, sum(cost_usd) AS cost_usd
        FROM finished GROUP BY 1, 2 ORDER BY 1, 2"""),
        {"hours": hours, "owner": owner, "groups": MAX_GROUPS})
    return [{"hour": row.hour.isoformat(), "name": row.name, "tokens": int(row.tokens or 0),
             "cost_usd": float(row.cost_usd or 0)} for row in rows]


def statuses(connection: Connection, owner: str | None, hours: int) -> list[dict[str, Any]]:
    """Tasks made in each hour, by their status now."""
    rows = connection.execute(text("""
        SELECT date_trunc('hour', created_at) AS hour, status, count(*) AS tasks FROM tasks
        WHERE created_at > now() - make_interval(hours => :hours)
          AND (CAST(:owner AS text) IS NULL OR owner = :owner)
        GROUP BY 1, 2 ORDER BY 1, 2"""), {"hours": hours, "owner": owner})
    return [{"hour": row.hour.isoformat(), "status": row.status, "tasks": row.tasks} for row in rows]


def durations(connection: Connection, owner: str | None, hours: int) -> list[dict[str, Any]]:
    """How long the runs that finished in the window took: tasks per duration bucket."""
    rows = connection.execute(text("""
        SELECT width_bucket(extract(epoch FROM finished_at - started_at), CAST(:bounds AS float8[]))
                 AS bucket, count(*) AS tasks
        FROM tasks
        WHERE finished_at > now() - make_interval(hours => :hours) AND started_at IS NOT NULL
          AND (CAST(:owner AS text) IS NULL OR owner = :owner)
        GROUP BY 1 ORDER BY 1"""),
        {"hours": hours, "owner": owner, "bounds": list(DURATION_BUCKETS_S)})
    counts = {row.bucket: row.tasks for row in rows}
    steps = zip(DURATION_BUCKETS_S, DURATION_BUCKETS_S[1:], strict=False)
    labels = [f"< {DURATION_BUCKETS_S[0]} s", *(f"{low}-{high} s" for low, high in steps),
              f">= {DURATION_BUCKETS_S[-1]} s"]
    return [{"bucket": label, "tasks": counts.get(index, 0)} for index, label in enumerate(labels)]

"""Token analytics from the record: a task's events, and per day, key, role and model the
CLI's own result lines (``modelUsage``: tokens and dollars by model)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from cca_core.tasks.store import get_task
from cca_core.tokens.schemas import DayRow

# The events token analytics reads: messages, tool results, results and the stream events
# that carry usage (not every text delta).
_TASK_EVENTS = text("""
    SELECT data FROM task_events
    WHERE task_id = :task_id
      AND (type IN ('assistant', 'user', 'result')
           OR (type = 'stream_event' AND data->'event'->>'type' IN ('message_start', 'message_delta')))
    ORDER BY id
""")
_OWNER = "AND (CAST(:owner AS text) IS NULL OR t.owner = :owner)"
_DAILY = text(f"""
    SELECT date_trunc('day', t.created_at)::date AS day, t.created_by AS key, t.role, m.key AS model,
           count(DISTINCT t.id) AS tasks,
           sum(coalesce((m.value->>'inputTokens')::bigint, 0)) AS input_tokens,
           sum(coalesce((m.value->>'outputTokens')::bigint, 0)) AS output_tokens,
           sum(coalesce((m.value->>'cacheReadInputTokens')::bigint, 0)) AS cache_read_input_tokens,
           sum(coalesce((m.value->>'cacheCreationInputTokens')::bigint, 0)) AS cache_creation_input_tokens,
           sum(coalesce((m.value->>'costUSD')::float8, 0)) AS cost_usd
    FROM tasks t
    JOIN task_events e ON e.task_id = t.id AND e.type = 'result'
    CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(e.data->'modelUsage') = 'object'
                                       THEN e.data->'modelUsage' ELSE '{{}}'::jsonb END) AS m
    WHERE t.created_at >= :since {_OWNER}
    GROUP BY 1, 2, 3, 4
    ORDER BY 1 DESC, cost_usd DESC
""")
_ENDINGS = text(f"""
    SELECT t.role, t.error_code, count(*) AS tasks FROM tasks t
    WHERE t.created_at >= :since AND t.finished_at IS NOT NULL {_OWNER}
    GROUP BY 1, 2
""")
_RECENT = text(f"""
    SELECT t.id, t.role FROM tasks t
    WHERE t.created_at >= :since AND t.finished_at IS NOT NULL {_OWNER}
    ORDER BY t.finished_at DESC LIMIT :limit
""")


def task_events(connection: Connection, task_id: str, owner: str | None = None) -> list[dict[str, Any]]:
    """The events of a task token analytics reads, in order (NotFound for another owner's)."""
    task = get_task(connection, task_id, owner)
    return [row.data for row in connection.execute(_TASK_EVENTS, {"task_id": task.id})]


def daily(connection: Connection, since: datetime, owner: str | None) -> list[DayRow]:
    rows = connection.execute(_DAILY, {"since": since, "owner": owner}).mappings()
    return [DayRow(**row, cache_hit_ratio=_ratio(row)) for row in rows]


def endings(connection: Connection, since: datetime, owner: str | None) -> dict[tuple[str | None, str], int]:
    """Ended tasks per (role, error code); the code is "" for a success."""
    rows = connection.execute(_ENDINGS, {"since": since, "owner": owner})
    return {(row.role, row.error_code or ""): row.tasks for row in rows}


def recent(connection: Connection, since: datetime, owner: str | None, limit: int) -> dict[str, str | None]:
    """The most recently ended tasks (at most ``limit``): id -> role."""
    rows = connection.execute(_RECENT, {"since": since, "owner": owner, "limit": limit})
    return {str(row.id): row.role for row in rows}


def _ratio(row: Any) -> float:
    context = row["input_tokens"] + row["cache_read_input_tokens"] + row["cache_creation_input_tokens"]
    return round(row["cache_read_input_tokens"] / context, 4) if context else 0.0

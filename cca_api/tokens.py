"""Token analytics: where the tokens and dollars went (per day, key, role and model; per task,
turn by turn) and what to change, from the record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, current_app
from pydantic import BaseModel, ConfigDict, Field

from cca_api import operations
from cca_api.auth import current
from cca_api.operations import operation
from cca_api.resources import Resources
from cca_core.errors import NotFound
from cca_core.infra.db import transaction
from cca_core.tasks.forecast import MIN_SAMPLES, SAMPLE_DAYS, Estimate
from cca_core.tokens import store
from cca_core.tokens.analytics import findings, task_tokens
from cca_core.tokens.schemas import Recommendations, TaskTokens, TokenMetrics

bp = Blueprint("tokens", __name__, url_prefix="/api/v1/tokens")
EXAMINED_TASKS = 200  # recent tasks whose tool outputs the recommendations read


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: int = Field(default=7, ge=1, le=90, description="How many days back (UTC) to look.")


def resources() -> Resources:
    return current_app.extensions["cca"]


@bp.get("/metrics")
@operation("Tokens and dollars per day, API key, role and model (the CLI's own counts)",
           TokenMetrics, query=Window, errors=(422,))
def metrics() -> dict[str, Any]:
    window = operations.query(Window)
    since = _since(window.days)
    with transaction(resources().sessions) as session:
        rows = store.daily(session.connection(), since, current().scope())
    return TokenMetrics(
        since=since, days=window.days, rows=rows,
        total_tokens=sum(row.input_tokens + row.output_tokens + row.cache_read_input_tokens
                         + row.cache_creation_input_tokens for row in rows),
        total_cost_usd=round(sum(row.cost_usd for row in rows), 6)).model_dump(mode="json")


@bp.get("/metrics/<task_id>")
@operation("Where one task's tokens went: context, cache reads and output per turn, tool "
           "output by tool, cost by model", TaskTokens, errors=(404,))
def task_metrics(task_id: str) -> dict[str, Any]:
    with transaction(resources().sessions) as session:
        events = store.task_events(session.connection(), task_id, current().scope())
    return task_tokens(task_id, events).model_dump(mode="json")


@bp.get("/recommendations")
@operation("Findings from recent tasks: low cache hit ratios, oversized tool outputs, runs "
           "ending at max turns, roles whose budget is always hit", Recommendations,
           query=Window, errors=(422,))
def recommendations() -> dict[str, Any]:
    window = operations.query(Window)
    since, owner = _since(window.days), current().scope()
    agents = resources().settings.agents
    with transaction(resources().sessions) as session:
        connection = session.connection()
        rows = store.daily(connection, since, owner)
        ended = store.endings(connection, since, owner)
        recent = store.recent(connection, since, owner, EXAMINED_TASKS)
        examined = [task_tokens(task_id, store.task_events(connection, task_id)) for task_id in recent]
    per_role: dict[str | None, int] = {}
    for (role, _), count in ended.items():
        per_role[role] = per_role.get(role, 0) + count
    budgets = {role: agents.token_budget_of(role) for role in per_role}
    found = findings(rows, examined, recent, ended, per_role, budgets)
    return Recommendations(since=since, days=window.days, tasks_examined=len(examined),
                           findings=found).model_dump(mode="json")


class Of(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str | None = Field(default=None, max_length=64, description="None: tasks with no role.")
    model: str | None = Field(default=None, max_length=200, description="None: the default model.")


@bp.get("/estimate")
@operation("What a task of a role and model will likely take: the p50 and p90 of the duration, "
           "tokens and cost of the recent successes of that role and model", Estimate,
           query=Of, errors=(404, 422))
def estimate() -> dict[str, Any]:
    asked = operations.query(Of)
    found = resources().estimates.of(asked.role, asked.model)
    if found is None:
        raise NotFound(f"fewer than {MIN_SAMPLES} tasks of role {asked.role or '(none)'} and model "
                       f"{asked.model or '(default)'} succeeded in the last {SAMPLE_DAYS} days",
                       code="no_history")
    return found.model_dump(mode="json")


def _since(days: int) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days - 1)

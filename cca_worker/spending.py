"""Budgets counted while runs stream: each model message's tokens are charged to the worker's
rolling window and to the day of the key that caused the task as they arrive (in Redis, shared
by every slot and worker), so a run that crosses either limit is stopped within one message.

A key over its ``tokens_per_day`` ends its running tasks ``budget_exceeded`` with
``quota_exceeded``. A worker over ``worker.token_budget_per_window`` stops taking tasks (see
housekeeping; a delivery it takes before its gate acts is left unclaimed, see runner) and parks
its running ones for another worker, where they resume their sessions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cca_core.access.keys import named_key
from cca_core.infra.db import autocommit
from cca_core.models import Task
from cca_core.names import key_spend_key
from cca_core.settings import Settings
from cca_core.tasks.store import usage_today
from cca_worker import budget
from cca_worker.verdict import StopReason

log = logging.getLogger(__name__)
KEY_DAY_TTL_S = 2 * 86400


@dataclass
class Spending:
    """What one run has charged so far, and the limits it is charged against."""

    client: redis.Redis
    hostname: str
    window_s: int
    worker_limit: int  # 0: none
    key_name: str | None = None
    key_limit: int | None = None  # the key's tokens_per_day
    charged: int = field(default=0)

    def charge(self, tokens: int) -> StopReason | None:
        """Charge the run's budget tokens so far (what is new since the last charge); the
        reason to stop it when a limit is now crossed. Redis errors are logged and let the
        run go on (its final usage is still recorded in Postgres)."""
        delta = tokens - self.charged
        if delta <= 0:
            return None
        self.charged = tokens
        try:
            budget.add(self.client, self.hostname, delta, self.window_s)
            key_total = (self.client.incrby(self._key_day(), delta)
                         if self.key_name and self.key_limit is not None else None)
            if key_total is not None and key_total > self.key_limit:  # type: ignore[operator]
                return StopReason.QUOTA_EXCEEDED
            if self.worker_limit and budget.used_in_window(
                    self.client, self.hostname, self.window_s) > self.worker_limit:
                return StopReason.WORKER_BUDGET
        except redis.RedisError as exc:
            log.warning("could not charge %s tokens: %s", delta, exc)
        return None

    def key_spent(self) -> bool:
        """Whether the key's day is already over its quota (a task queued before then must
        not start)."""
        if not self.key_name or self.key_limit is None:
            return False
        try:
            return int(self.client.get(self._key_day()) or 0) >= self.key_limit
        except redis.RedisError as exc:
            log.warning("could not read the day counter of key %s: %s", self.key_name, exc)
            return False

    def _key_day(self) -> str:
        return key_spend_key(self.key_name or "", datetime.now(UTC).strftime("%Y%m%d"))


def for_run(client: redis.Redis, engine: Engine, settings: Settings, hostname: str,
            task: Task) -> Spending:
    """The spending of a run of ``task``: its key's daily token quota, if it has one, with the
    key's day counter started from what Postgres says it spent today (when Redis has none)."""
    worker = settings.worker
    spending = Spending(client, hostname, worker.budget_window_seconds, worker.token_budget_per_window)
    if not task.created_by:
        return spending
    with Session(engine) as session:
        key = named_key(session, task.created_by)
        limit = key.tokens_per_day if key is not None else None
    if limit is None:
        return spending
    spending.key_name, spending.key_limit = task.created_by, limit
    day = spending._key_day()
    try:
        if not client.exists(day):
            with autocommit(engine) as connection:
                _, spent, _ = usage_today(connection, task.created_by)
            client.set(day, spent, nx=True, ex=KEY_DAY_TTL_S)
    except redis.RedisError as exc:
        log.warning("could not start the day counter of key %s: %s", task.created_by, exc)
    return spending

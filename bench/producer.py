"""Submitting tasks without HTTP, with the row cca's API would insert: a bare INSERT (the
baseline of (a)) or cca's own ``store.create_task`` (the submitter of (c)), each followed by
the Celery message the API sends."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from celery import Celery
from sqlalchemy import Engine, delete, func, insert, inspect, select

from bench.waiting import BenchError
from cca_core.infra.db import autocommit, make_engine
from cca_core.models import Task
from cca_core.names import RUN_AGENT_TASK
from cca_core.settings import Settings
from cca_core.tasks import store
from cca_core.tasks.dispatch import celery_config, message_options

# Set per row by the database or at insert time, never copied from the template.
_FRESH = frozenset({"id", "created_at", "sent_at"})
_INSERT_BARE = insert(Task).values(sent_at=func.now())


@dataclass
class Producer:
    """The API's Postgres pool and Celery producer settings, without Flask."""

    engine: Engine
    celery: Celery

    def insert_bare(self, values: dict[str, Any]) -> None:
        """INSERT the row the leanest way SQLAlchemy Core offers: one statement that commits
        itself (no RETURNING, no ORM, no BEGIN or COMMIT); send the message."""
        task_id = uuid.uuid4()
        with autocommit(self.engine) as connection:
            connection.execute(_INSERT_BARE, store.column_values({"id": task_id, **values}))
        self._send(str(task_id), values)

    def create(self, values: dict[str, Any]) -> str:
        """``store.create_task`` as the API runs it (autocommit), then the message; return
        the task id."""
        with autocommit(self.engine) as connection:
            task, _ = store.create_task(connection, values)
        self._send(str(task.id), values)
        return str(task.id)

    def close(self) -> None:
        self.celery.close()
        self.engine.dispose()

    def _send(self, task_id: str, values: dict[str, Any]) -> None:
        options = message_options(values.get("queue"), values.get("priority", "normal"),
                                  values.get("timeout_seconds"))
        self.celery.send_task(RUN_AGENT_TASK, args=[task_id], **options)


def make_producer(settings: Settings) -> Producer:
    """A pool sized like the API's and a producer with cca's Celery settings."""
    pg = settings.postgres
    engine = make_engine(pg.url, pool_size=pg.pool_size,
                         max_overflow=max(0, pg.max_connections - pg.pool_size))
    celery = Celery("bench-producer")
    celery.conf.update(celery_config(settings.redis.url, 3600))
    return Producer(engine, celery)


def api_row(settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """The non-NULL values cca's API stores for ``body`` (ORM attribute names), learnt by
    POSTing it once to an in-process app and reading the row back; the row is deleted, its
    message stays in Redis (call before a reset). Raises BenchError if the API refuses."""
    from cca_api import create_app

    app = create_app(settings)
    response = app.test_client().post("/api/v1/tasks", json=body)
    if response.status_code != 202:
        raise BenchError(f"the API refused the template task: {response.get_data(as_text=True)}")
    engine = app.extensions["cca"].engine
    try:
        with engine.begin() as connection:
            row = connection.execute(select(Task.__table__)
                                     .where(Task.id == response.get_json()["id"])).one()
            connection.execute(delete(Task).where(Task.id == row.id))
    finally:
        engine.dispose()
    columns = row._mapping
    return {attr.key: columns[attr.columns[0].name] for attr in inspect(Task).column_attrs
            if attr.key not in _FRESH and columns[attr.columns[0].name] is not None}


def column_of(key: str) -> str:
    """The column of a task row's attribute (``meta`` is the ``metadata`` column)."""
    return "metadata" if key == "meta" else key

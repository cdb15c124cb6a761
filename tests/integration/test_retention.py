"""Retention: a real worker's sweep deletes old task events, stored sessions and idle event
streams in batches, keeps the rest, and /metrics counts what it deleted."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from cca_api import create_app
from cca_core.infra.db import autocommit, make_engine
from cca_core.models import TaskEvent, TaskSession
from cca_core.sessions import store as sessions
from cca_core.sessions.store import Checkpoint
from cca_core.tasks import store
from tests.integration.test_metrics import scrape
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
OLD, RECENT = 25, 4


def test_the_sweep_deletes_old_events_and_idle_streams_and_counts_them(
        make_settings, start_worker, redis_client, database_url):
    client = create_app(make_settings()).test_client()
    task = client.post("/api/v1/tasks", json={"prompt": "p"}).get_json()
    assert client.post(f"/api/v1/tasks/{task['id']}/cancel").status_code == 200  # never runs
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    with autocommit(engine) as connection:
        store.append_events(connection, task["id"], 1, [{"type": "old", "n": n} for n in range(OLD)])
        connection.execute(text("UPDATE task_events SET created_at = now() - interval '40 days'"))
        store.append_events(connection, task["id"], 1, [{"type": "recent"}] * RECENT)
        kept = client.post("/api/v1/tasks", json={"prompt": "q"}).get_json()
        for task_id in (task["id"], kept["id"]):
            sessions.save(connection, task_id, Checkpoint("s", 1, gzip.compress(b"{}\n"), None, None))
        connection.execute(text("UPDATE task_sessions SET updated_at = now() - interval '40 days' "
                                "WHERE task_id = :id"), {"id": task["id"]})
    redis_client.xadd("cca:events:idle-task", {"event": "{}"}, id="1000-0")  # added in 1970
    redis_client.xadd("cca:events:live-task", {"event": "{}"})
    # An entry's id is its event's table id (not a time): its recorded time decides.
    recorded = [(datetime.now(UTC) - timedelta(hours=hours)).isoformat() for hours in (2, 0)]
    redis_client.xadd("cca:events:idle-run", {"event": "{}", "attempt": 1, "at": recorded[0]}, id="7-0")
    redis_client.xadd("cca:events:live-run", {"event": "{}", "attempt": 1, "at": recorded[1]}, id="8-0")

    start_worker("w1", retention={"task_events_days": 30, "sessions_days": 30, "stream_seconds": 3600,
                                  "batch_size": 10})

    def events_left() -> list[str]:
        with autocommit(engine) as connection:
            return list(connection.scalars(select(TaskEvent.type).where(TaskEvent.task_id == task["id"])
                                           .order_by(TaskEvent.id)))

    wait_for(lambda: len(events_left()) == RECENT and not redis_client.exists("cca:events:idle-task")
             and not redis_client.exists("cca:events:idle-run"),
             timeout_s=30, message="retention to delete the old events and the idle streams")

    assert events_left() == ["recent"] * RECENT
    assert redis_client.exists("cca:events:live-task") and redis_client.exists("cca:events:live-run")
    # The counts are sent once a whole step (every kind) is done: a moment after the deletions.
    expected = {"task_events": OLD, "streams": 2, "sessions": 1}

    def counted() -> dict[str, float]:
        samples = scrape(client)
        return {kind: samples[("cca_retention_deleted_total", (("kind", kind),))] for kind in expected}

    wait_for(lambda: counted() == expected, timeout_s=30, message="retention to count what it deleted")
    with autocommit(engine) as connection:
        left = connection.scalars(select(TaskSession.task_id)).all()
    assert [str(task_id) for task_id in left] == [kept["id"]]
    assert events_left() == ["recent"] * RECENT  # (the worker may run the other task meanwhile)
    engine.dispose()

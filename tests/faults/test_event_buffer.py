"""A run's events while Postgres is unreachable (cca_worker.events with cca_worker.outage), on
real Postgres and Redis: kept in a bounded buffer and written once it is back; what did not
fit is not dropped silently, a gap event says how many were lost."""

from __future__ import annotations

import pytest

from cca_core.infra.db import autocommit, make_engine
from cca_core.tasks import store
from cca_worker.events import EventSink
from cca_worker.outage import Outage
from tests.support.postgres import unreachable

pytestmark = pytest.mark.integration


def test_events_wait_out_an_outage_and_a_full_buffer_leaves_a_gap_event(
        pg_server, database_url, redis_client):
    engine = make_engine(database_url, pool_size=1)
    with autocommit(engine) as connection:
        task, _ = store.create_task(connection, {"prompt": "p", "token_budget": 1000,
                                                 "timeout_seconds": 60})
    task_id = str(task.id)
    clock = [0.0]
    outage = Outage(60, on_start=lambda: None, on_end=lambda: None, clock=lambda: clock[0])
    sink = EventSink(engine, redis_client, task_id, 1, ttl_s=60, max_events=1000,
                     outage=outage, max_buffered=100)
    sink.add({"type": "assistant", "n": 0})
    sink.flush()
    with unreachable(pg_server, database_url):
        for n in range(1, 131):
            sink.add({"type": "assistant", "n": n})
            clock[0] += 0.25
            sink.flush()  # fails, or backs off
        assert outage.down
    clock[0] += 10
    sink.add({"type": "assistant", "n": 131})  # the buffer has no room yet: lost too
    sink.flush()
    sink.add({"type": "result", "n": 132})
    sink.flush()
    assert not outage.down
    with autocommit(engine) as connection:
        events = [event.data for event in store.list_events(connection, task_id, limit=1000)]
    engine.dispose()
    assert [event["n"] for event in events[:101]] == list(range(101))
    gap = events[101]
    assert (gap["type"], gap["subtype"], gap["lost"]) == ("cca", "gap", 31)
    assert events[102:] == [{"type": "result", "n": 132}]

"""A worker's Postgres chores (the sweep, the fleet's samples, the spooled finishes) run on a
thread of their own: one stuck on Postgres does not stop the worker from taking and running
tasks. On the consumer's timer, as they were, every hand-off waited for them (issue 19).
The real API, a real `cca worker` and the real `claude` CLI against the scripted Messages API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from cca_api import create_app
from tests.support.fleet import FleetAPI
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(make_settings: Callable[..., Any]) -> FleetAPI:
    return FleetAPI(create_app(make_settings()).test_client())


def test_tasks_run_while_a_chore_waits_for_a_locked_table(api, start_worker, engine):
    with engine.connect() as locker:
        # The worker's first chore records a fleet sample: it waits for this lock.
        locker.execute(text("LOCK TABLE fleet_samples IN ACCESS EXCLUSIVE MODE"))
        worker = start_worker("w1", daemon={"max_agents": 1}, dashboard={"sample_seconds": 5},
                              worker={"sweep_interval_seconds": 1})
        wait_for(lambda: _waiting_for_lock(engine), timeout_s=30)  # the chore is stuck
        for answer in ("one", "two"):
            task = api.submit({"text": answer})
            done = api.wait_terminal(task["id"], timeout_s=60)
            assert (done["status"], done["result"]) == ("succeeded", answer), done
        assert _waiting_for_lock(engine), worker.log.read_text()  # and still is
        locker.rollback()


def _waiting_for_lock(engine) -> bool:
    with engine.connect() as connection:
        return bool(connection.execute(text(
            "SELECT count(*) FROM pg_locks WHERE relation = 'fleet_samples'::regclass AND NOT granted"
        )).scalar_one())

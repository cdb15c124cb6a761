"""A worker killed between taking a task's message and claiming its task (issue 19, item 3):
the message stays unacknowledged in Redis until its visibility timeout (an hour) and the task
stays queued, so without more the task would wait for ``worker.resend_after_seconds`` (five
minutes). The worker's main process records which of its incarnations took each message; the
sweep re-sends a queued task whose message was taken by a process that is gone, at its next
turn. The real API, real `cca worker` processes (the same name started again, as a supervisor
restarts it) and the real `claude` CLI against the scripted Messages API.

The window is made wide and certain: the task's row is locked, so the pool process that got
the message waits in its claim while its worker is SIGKILLed, and the claim is then cut off
(as if the process had died before sending it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from cca_api import create_app
from tests.support.fleet import FleetAPI
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

SETTINGS = {"worker": {"sweep_interval_seconds": 1, "resend_after_seconds": 300}}


@pytest.fixture
def api(make_settings: Callable[..., Any]) -> FleetAPI:
    return FleetAPI(create_app(make_settings(**SETTINGS)).test_client())


def test_a_message_taken_by_a_worker_killed_before_its_claim_is_sent_again_at_once(
        api, start_worker, engine):
    task = api.submit({"text": "done"})
    with engine.connect() as locker:
        locker.execute(text("SELECT 1 FROM tasks WHERE id = :id FOR UPDATE"), {"id": task["id"]})
        victim = start_worker("w1", daemon={"max_agents": 1}, **SETTINGS)
        wait_for(lambda: _claim_waits(engine), timeout_s=30,
                 message="the worker's pool process to wait in its claim of the locked task")
        victim.kill()
        victim.process.wait(5)
        # Postgres would still run the dead process's claim once the lock goes: cut it off,
        # as if the process had died before its claim reached the database.
        _cut_waiting_claims(engine)
        locker.rollback()
    assert api.get(task["id"])["status"] == "queued"
    restarted = time.monotonic()
    start_worker("w1", daemon={"max_agents": 1}, **SETTINGS)
    done = api.wait_terminal(task["id"], timeout_s=30)
    assert (done["status"], done["result"], done["attempts"]) == ("succeeded", "done", 1), done
    assert time.monotonic() - restarted < 30


# A claim (store.claim_task) is one statement around "UPDATE tasks SET status ...".
WAITING_CLAIMS = ("FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                  "AND query ILIKE '%UPDATE tasks SET status%'")


def _claim_waits(engine) -> bool:
    """Whether some session waits for a row lock in a claim."""
    with engine.connect() as connection:
        return bool(connection.scalar(text(f"SELECT count(*) {WAITING_CLAIMS}")))


def _cut_waiting_claims(engine) -> None:
    with engine.connect() as connection:
        cut = connection.scalars(text(f"SELECT pg_terminate_backend(pid) {WAITING_CLAIMS}")).all()
    assert cut == [True], cut

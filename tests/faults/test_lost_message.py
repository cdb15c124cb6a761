"""A queued task's message lost from Redis (a crash past the AOF's last second, a restore
without Redis's data) is re-sent by the sweep once it has waited ``worker.resend_after_seconds``
in a queue short of messages; a task that waited as long behind a busy slot, with its message
in the queue, is not sent twice (issue 19). The real API, a real `cca worker` (its sweep) and
the real `claude` CLI against the scripted Messages API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cca_api import create_app
from cca_core.names import queue_keys
from tests.support.fleet import FleetAPI, bash, ts

pytestmark = pytest.mark.e2e

SETTINGS = {"worker": {"sweep_interval_seconds": 1, "resend_after_seconds": 2}}


@pytest.fixture
def api(make_settings: Callable[..., Any]) -> FleetAPI:
    return FleetAPI(create_app(make_settings(**SETTINGS)).test_client())


def drop_message(redis_client, task_id: str) -> None:
    """Take the task's message out of its queue, as a Redis that lost it would."""
    dropped = sum(redis_client.lrem(key, 0, message)
                  for key in queue_keys("cca") for message in redis_client.lrange(key, 0, -1)
                  if task_id.encode() in message)
    assert dropped == 1, dropped


def test_a_task_waiting_its_turn_behind_a_busy_slot_is_not_sent_twice(api, start_worker):
    busy = api.submit(bash("sleep 6; echo slept"), {"text": "slept"}, allowed_tools=["Bash"])
    waiting = api.submit({"text": "done"})
    worker = start_worker("w1", daemon={"max_agents": 1}, **SETTINGS)
    for task in (busy, waiting):
        done = api.wait_terminal(task["id"], timeout_s=60)
        assert (done["status"], done["attempts"]) == ("succeeded", 1), done
    # It waited over resend_after_seconds, with its message in the queue all along.
    assert ts(api.get(waiting["id"])["started_at"]) - ts(waiting["created_at"]) > 2 * 2
    assert "re-sending task" not in worker.log.read_text()


def test_a_lost_message_is_sent_again(api, start_worker, redis_client):
    lost = api.submit({"text": "done"})
    drop_message(redis_client, lost["id"])
    worker = start_worker("w1", daemon={"max_agents": 1}, **SETTINGS)
    done = api.wait_terminal(lost["id"], timeout_s=60)
    assert (done["status"], done["result"], done["attempts"]) == ("succeeded", "done", 1), done
    assert f"re-sending task {lost['id']}" in worker.log.read_text()

"""Live streams against a real API process (gunicorn, gthread): a follower replays recorded
events, receives new ones as a worker's event sink publishes them, sees status changes made
by anyone (notices from Postgres), resumes from Last-Event-ID, and ends after the terminal
status; many followers do not hold up other requests; the fleet-wide stream is scoped to
the caller's tenant."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine, text

from cca_api.hub import StatusHub
from cca_core.access.keys import create_key
from cca_core.infra import sse
from cca_core.infra.api_client import CcaClient
from cca_core.infra.db import autocommit, make_session_factory, transaction
from cca_core.tasks import store
from cca_core.tasks.outcome import Outcome
from cca_worker.events import EventSink
from tests.conftest import start_api_process
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


class Follower:
    """Reads one SSE stream in a thread; ``next()`` returns its events as they come."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.events: queue.Queue[sse.ServerEvent | BaseException] = queue.Queue()
        self._url, self._headers = url, headers or {}
        self.status_code: int | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            with httpx.stream("GET", self._url, headers=self._headers,
                              timeout=httpx.Timeout(10, read=60)) as response:
                self.status_code = response.status_code
                for event in sse.parse(response.iter_lines()):
                    self.events.put(event)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.events.put(exc)

    def next(self, timeout_s: float = 10) -> sse.ServerEvent:
        item = self.events.get(timeout=timeout_s)
        if isinstance(item, BaseException):
            raise item
        return item

    def until(self, name: str, timeout_s: float = 10) -> list[sse.ServerEvent]:
        seen = []
        while True:
            event = self.next(timeout_s)
            seen.append(event)
            if event.event == name:
                return seen


def submit(url: str, **fields: Any) -> dict[str, Any]:
    answer = httpx.post(f"{url}/api/v1/tasks", json={"prompt": "live", **fields}, timeout=10)
    assert answer.status_code == 202, answer.text
    return answer.json()


def claim(engine: Engine, task_id: str) -> None:
    with autocommit(engine) as connection:
        assert store.claim_task(connection, task_id, worker="w1", pid=1, lease_s=60, max_attempts=3)


def sink(engine: Engine, redis_client: redis.Redis, task_id: str) -> EventSink:
    return EventSink(engine, redis_client, task_id, 1, ttl_s=600, max_events=1000)


def test_a_follower_replays_follows_and_ends_after_the_terminal_status(
        api_url: str, engine: Engine, redis_client: redis.Redis) -> None:
    task = submit(api_url)
    claim(engine, task["id"])
    events = sink(engine, redis_client, task["id"])
    events.add({"type": "system", "subtype": "init"})
    events.flush()

    follower = Follower(f"{api_url}/api/v1/tasks/{task['id']}/stream")
    first = follower.next()
    assert (first.event, first.data["type"]) == ("event", "system")
    status = follower.next()
    assert (status.event, status.data["status"]) == ("status", "running")

    events.add({"type": "assistant", "message": {"id": "m1", "content": [{"type": "text", "text": "hi"}]}})
    events.flush()
    live = follower.next()  # while the task still runs: from the Redis stream
    assert live.event == "event" and live.data["type"] == "assistant" and live.id == first.id + 1

    # The last events ride with the finish (table only): the follower reads them on the notice.
    with autocommit(engine) as connection:
        assert store.finish_task(connection, task["id"], 1, Outcome(status="succeeded", result="done"),
                                 [{"type": "result", "subtype": "success"}])
    rest = follower.until("end")
    assert [event.event for event in rest] == ["event", "status", "end"]
    assert rest[0].data["type"] == "result" and rest[1].data["status"] == "succeeded"
    assert rest[1].data["result"] == "done"

    # Resuming after the first event replays only what came after it.
    again = Follower(f"{api_url}/api/v1/tasks/{task['id']}/stream", {"Last-Event-ID": str(first.id)})
    replay = again.until("end")
    assert [event.data.get("type") for event in replay if event.event == "event"] == ["assistant", "result"]
    assert [event.id for event in replay if event.event == "event"] == [live.id, rest[0].id]
    after = Follower(f"{api_url}/api/v1/tasks/{task['id']}/stream?after={live.id}")
    assert [event.event for event in after.until("end")] == ["event", "status", "end"]


def test_a_cancel_by_the_api_ends_a_queued_tasks_stream(api_url: str) -> None:
    task = submit(api_url)
    follower = Follower(f"{api_url}/api/v1/tasks/{task['id']}/stream")
    assert follower.next().data["status"] == "queued"
    httpx.post(f"{api_url}/api/v1/tasks/{task['id']}/cancel", timeout=10).raise_for_status()
    status, end = follower.until("end", timeout_s=5)
    assert status.data["status"] == "cancelled" and end.data == {"status": "cancelled"}


def test_the_client_follows_to_the_end(api_url: str, engine: Engine, redis_client: redis.Redis) -> None:
    task = submit(api_url)
    claim(engine, task["id"])
    client = CcaClient(api_url)
    seen: list[sse.ServerEvent] = []

    def follow() -> None:
        seen.extend(client.follow(task["id"]))

    reader = threading.Thread(target=follow)
    reader.start()
    events = sink(engine, redis_client, task["id"])
    for n in range(3):
        events.add({"type": "assistant", "n": n})
        events.flush()
    with autocommit(engine) as connection:
        store.finish_task(connection, task["id"], 1, Outcome(status="failed", error_code="crashed"))
    reader.join(15)
    assert not reader.is_alive()
    assert [event.data["data"]["n"] for event in seen if event.event == "event"] == [0, 1, 2]
    assert seen[-2].data["status"] == "failed" and seen[-1].event == "end"


def test_bad_cursors_and_unknown_tasks_are_clear_errors(api_url: str) -> None:
    task = submit(api_url)
    stream = f"{api_url}/api/v1/tasks/{task['id']}/stream"
    answer = httpx.get(stream, headers={"Last-Event-ID": "x1"}, timeout=5)
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "Last-Event-ID"
    answer = httpx.get(f"{stream}?after=-1", timeout=5)
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "after"
    answer = httpx.get(f"{api_url}/api/v1/tasks/00000000-0000-0000-0000-000000000000/stream", timeout=5)
    assert answer.status_code == 404


def test_many_followers_do_not_hold_up_other_requests(tmp_path, config_data, engine: Engine) -> None:
    config = {**config_data, "daemon": {**config_data.get("daemon", {}), "api_threads": 24}}
    url = start_api_process(tmp_path, config, "threads")
    tasks = [submit(url) for _ in range(16)]  # as many as one process follows (24 - 8)
    followers = [Follower(f"{url}/api/v1/tasks/{task['id']}/stream") for task in tasks]
    for follower in followers:
        assert follower.next().event == "status"
    for _ in range(10):  # answered while every follower holds its thread (a sync worker would not)
        assert httpx.get(f"{url}/api/v1/tasks/{tasks[0]['id']}", timeout=5).status_code == 200
    refused = httpx.get(f"{url}/api/v1/tasks/{tasks[0]['id']}/stream", timeout=5)
    assert refused.status_code == 503 and "follows as many streams" in refused.json()["error"]["message"]


@pytest.fixture
def tenants(tmp_path, config_data, engine: Engine) -> tuple[str, dict[str, str]]:
    with transaction(make_session_factory(engine)) as session:
        keys = {name: create_key(session, name, "submitter", tenant=name)[1] for name in ("alpha", "beta")}
    config = {**config_data, "daemon": {**config_data.get("daemon", {}), "require_auth": True,
                                        "api_keys": ["admin-key-0123456789"]}}
    return start_api_process(tmp_path, config, "tenants"), keys


def test_the_fleet_stream_sends_the_callers_status_changes_only(tenants) -> None:
    url, keys = tenants
    alpha, beta = ({"X-API-Key": keys[name]} for name in ("alpha", "beta"))
    follower = Follower(f"{url}/api/v1/stream", alpha)
    time.sleep(0.5)  # the hub listens before the first notice
    theirs = httpx.post(f"{url}/api/v1/tasks", json={"prompt": "b"}, headers=beta, timeout=10).json()
    ours = httpx.post(f"{url}/api/v1/tasks", json={"prompt": "a"}, headers=alpha, timeout=10).json()
    httpx.post(f"{url}/api/v1/tasks/{ours['id']}/cancel", headers=alpha, timeout=10).raise_for_status()
    notices = [follower.next(5).data for _ in range(2)]
    assert [(n["id"], n["status"]) for n in notices] == [(ours["id"], "queued"), (ours["id"], "cancelled")]
    assert all(n["id"] != theirs["id"] for n in notices)
    assert follower.events.empty()


def test_the_hub_listens_while_it_has_followers_and_lets_go_after(database_url: str,
                                                                  engine: Engine) -> None:
    hub = StatusHub(database_url, capacity=4, idle_s=0.5)

    def listening() -> int:
        with autocommit(engine) as connection:
            return connection.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN cca_status'"))

    def notice_reaches(subscription) -> None:
        with autocommit(engine) as connection:
            task, _ = store.create_task(connection, {"prompt": "p", "token_budget": 1,
                                                     "timeout_seconds": 1})
        wait_for(lambda: any(n.get("id") == str(task.id) for n in subscription.drain()),
                 timeout_s=5, message="the insert's notice")

    subscription = hub.subscribe(lambda notice: True)
    notice_reaches(subscription)
    assert listening() == 1
    hub.unsubscribe(subscription)
    wait_for(lambda: listening() == 0, timeout_s=10, message="the idle hub to close its connection")
    again = hub.subscribe(lambda notice: True)  # starts listening again
    notice_reaches(again)
    hub.unsubscribe(again)

"""The records of which worker incarnation took a task's message (cca_core.tasks.deliveries),
and the sweep that re-sends a task whose message was taken by an incarnation now gone: real
Redis and real Postgres."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from cca_core.fleet.state import queue_depths
from cca_core.infra.db import autocommit
from cca_core.names import DELIVERIES_KEY
from cca_core.settings import AgentSettings
from cca_core.tasks import deliveries, store
from cca_worker.sweep import forget_settled, short_of_messages, sweep

pytestmark = pytest.mark.integration

ROW = {"prompt": "p", "token_budget": 100000, "timeout_seconds": 600}


def new_task(engine) -> str:
    with autocommit(engine) as connection:
        task, _ = store.create_task(connection, dict(ROW))
    return str(task.id)


def test_a_record_names_the_incarnation_and_one_taken_again_is_not_forgotten(redis_client):
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    deliveries.record(redis_client, first, "w1@h", "old")
    deliveries.record(redis_client, second, "w2@h", "b")
    redis_client.hset(DELIVERIES_KEY, "not-a-task", "{}")
    read = deliveries.read(redis_client)
    assert {(d.task_id, d.worker, d.incarnation) for d in read} == {
        (first, "w1@h", "old"), (second, "w2@h", "b")}
    assert not redis_client.hexists(DELIVERIES_KEY, "not-a-task")  # unreadable: dropped on the way
    # w1 was restarted under its name (a new incarnation), w2 still runs as itself
    assert deliveries.taken_by_the_gone(read, {"w1@h": "new", "w2@h": "b"}) == {first}
    assert deliveries.taken_by_the_gone(read, {}) == {first, second}
    deliveries.record(redis_client, first, "w1@h", "new")  # its re-sent message was taken again
    deliveries.forget(redis_client, read)
    assert [(d.task_id, d.incarnation) for d in deliveries.read(redis_client)] == [(first, "new")]


def test_the_sweep_resends_a_queued_task_taken_by_the_gone_and_forgets_what_is_settled(engine, redis_client):
    lost, taken_live, claimed = new_task(engine), new_task(engine), new_task(engine)
    with autocommit(engine) as connection:
        assert store.claim_task(connection, claimed, worker="w1@h", pid=1, lease_s=60, max_attempts=3)
    deliveries.record(redis_client, lost, "w1@h", "dead")
    deliveries.record(redis_client, claimed, "w1@h", "dead")
    deliveries.record(redis_client, taken_live, "w2@h", "alive")
    received = deliveries.read(redis_client)
    untaken = deliveries.taken_by_the_gone(received, {"w2@h": "alive"})
    sent: list[str] = []
    report = sweep(engine, lambda task: sent.append(str(task.id)), AgentSettings(), resend_after_s=300,
                   untaken=untaken)
    assert sent == [lost] and report.resent == 1  # the claimed one runs under its lease
    forget_settled(engine, redis_client, received, untaken)
    # The live worker's pool process is about to claim its task: its record stays until then.
    assert [d.task_id for d in deliveries.read(redis_client)] == [taken_live]
    with autocommit(engine) as connection:
        assert store.claim_task(connection, taken_live, worker="w2@h", pid=2, lease_s=60, max_attempts=3)
    forget_settled(engine, redis_client, deliveries.read(redis_client), set())
    assert deliveries.read(redis_client) == []


def test_a_queue_is_short_of_messages_only_when_one_of_its_waiting_tasks_has_none(engine, redis_client):
    waiting = [new_task(engine) for _ in range(3)]
    with autocommit(engine) as connection:
        store.mark_unsent(connection, new_task(engine))  # no message yet: sent at the next sweep
        parked = new_task(engine)
        assert store.park_unclaimed(connection, parked, "credential", datetime.now(UTC))
    redis_client.lpush("cca", "m1", "m2", "m3")  # a backlog: every waiting task has its message
    depths = queue_depths(redis_client, {"cca"})
    assert short_of_messages(engine, depths, taken=[]) == set()
    redis_client.rpop("cca")  # a worker took one, and its record says so
    assert short_of_messages(engine, queue_depths(redis_client, {"cca"}), taken=waiting[:1]) == set()
    # The record is not there: the message was lost (Redis lost it, say)
    assert short_of_messages(engine, queue_depths(redis_client, {"cca"}), taken=[]) == {"cca"}

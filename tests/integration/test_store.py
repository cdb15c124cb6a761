"""Status changes on real Postgres: conditional claims, leases, one terminal status, sweeps."""

from __future__ import annotations

import pytest
from sqlalchemy import text, update

from cca_core.infra.db import autocommit, make_engine, make_session_factory, transaction
from cca_core.models import Task
from cca_core.tasks import store
from cca_core.tasks.outcome import Outcome

pytestmark = pytest.mark.integration

# A row as submission makes it: the limits are decided there.
ROW = {"prompt": "p", "token_budget": 100000, "timeout_seconds": 600}


@pytest.fixture
def sessions(database_url):
    engine = make_engine(database_url, pool_size=2)
    yield make_session_factory(engine)
    engine.dispose()


def new_task(sessions, **values) -> str:
    with transaction(sessions) as session:
        task, _ = store.create_task(session.connection(), {**ROW, **values})
    return str(task.id)


def claim(sessions, task_id, worker="w1", lease_s=30, max_attempts=3):
    """As the worker claims: one conditional UPDATE on an autocommit connection."""
    with autocommit(sessions.kw["bind"]) as connection:
        return store.claim_task(connection, task_id, worker=worker, pid=123, lease_s=lease_s,
                                max_attempts=max_attempts)


def expire_lease(sessions, task_id):
    with transaction(sessions) as session:
        session.execute(update(Task).where(Task.id == store.parse_task_id(task_id))
                        .values(lease_expires_at=text("now() - interval '1 second'"),
                                sent_at=text("now() - interval '1 minute'")))


def test_redelivered_message_does_not_run_agent_twice(sessions):
    task_id = new_task(sessions)
    first = claim(sessions, task_id, "w1")
    assert first is not None and first.attempts == 1 and first.worker == "w1"
    assert claim(sessions, task_id, "w2") is None


def test_a_claim_in_autocommit_is_committed_at_once_and_the_pool_stays_transactional(
    sessions, database_url,
):
    task_id = new_task(sessions)
    engine = make_engine(database_url, pool_size=1, max_overflow=0)  # one connection, reused
    single = make_session_factory(engine)
    try:
        with autocommit(engine) as connection:
            assert store.claim_task(connection, task_id, worker="w1", pid=1, lease_s=30,
                                    max_attempts=3) is not None
            with transaction(sessions) as other:
                assert store.get_task(other, task_id).status == "running"

        with single() as session:
            session.execute(update(Task).where(Task.id == store.parse_task_id(task_id))
                            .values(worker="w2"))
            session.rollback()
    finally:
        engine.dispose()
    with transaction(sessions) as session:
        assert store.get_task(session.connection(), task_id).worker == "w1"


def test_a_running_task_whose_lease_expired_is_claimable_again(sessions):
    task_id = new_task(sessions)
    claim(sessions, task_id, "w1")
    expire_lease(sessions, task_id)
    second = claim(sessions, task_id, "w2")
    assert second is not None and second.attempts == 2 and second.worker == "w2"


def test_the_old_run_cannot_finish_or_renew_after_losing_its_task(sessions):
    task_id = new_task(sessions)
    claim(sessions, task_id, "w1")
    expire_lease(sessions, task_id)
    claim(sessions, task_id, "w2")
    with transaction(sessions) as session:
        assert not store.renew_lease(session.connection(), task_id, 1, 30).owned
        assert not store.finish_task(session.connection(), task_id, 1, Outcome(status="succeeded"))
        assert store.finish_task(session.connection(), task_id, 2, Outcome(status="failed", error_code="x"))
    with transaction(sessions) as session:
        assert store.get_task(session.connection(), task_id).status == "failed"
        assert not store.finish_task(session.connection(), task_id, 2, Outcome(status="succeeded"))


def test_events_are_recorded_in_order_alone_or_with_the_finish(sessions):
    task_id = new_task(sessions)
    claim(sessions, task_id, "w1")
    during = [{"type": "system", "subtype": "init"}, {"type": "assistant", "n": 1},
              {"subtype": "odd", "data": "no type"}]
    last = [{"type": "user", "n": 2}, {"type": "result", "subtype": "success", "n": 3}]
    engine = sessions.kw["bind"]
    with autocommit(engine) as connection:
        store.append_events(connection, task_id, 1, during)
        store.append_events(connection, task_id, 1, [])
        assert store.finish_task(connection, task_id, 1, Outcome(status="succeeded"), last)
        assert not store.finish_task(connection, task_id, 1, Outcome(status="failed"))
    with transaction(sessions) as session:
        recorded = store.list_events(session.connection(), task_id)
        assert store.get_task(session.connection(), task_id).status == "succeeded"
    assert [event.data for event in recorded] == during + last
    assert [(event.attempt, event.type, event.subtype) for event in recorded] == [
        (1, "system", "init"), (1, "assistant", None), (1, "unknown", "odd"),
        (1, "user", None), (1, "result", "success")]


def test_a_re_run_task_keeps_what_every_attempt_spent(sessions):
    task_id = new_task(sessions)
    first = claim(sessions, task_id, "w1")
    progress = {"input_tokens": 100, "output_tokens": 10, "cache_read_input_tokens": 5,
                "cache_creation_input_tokens": 1, "num_turns": 2, "cost_usd": 0.5}
    with transaction(sessions) as session:
        assert store.renew_lease(session.connection(), task_id, first.attempts, 30, progress).owned
    expire_lease(sessions, task_id)  # the first worker died mid-run
    second = claim(sessions, task_id, "w2")
    assert second is not None and second.attempts == 2
    with transaction(sessions) as session:
        store.renew_lease(session.connection(), task_id, 2, 30, {**progress, "input_tokens": 20})
        assert store.get_task(session.connection(), task_id).input_tokens == 120

    outcome = Outcome(status="succeeded", input_tokens=30, output_tokens=3,
                      cache_read_input_tokens=2, cache_creation_input_tokens=1, cost_usd=0.25,
                      num_turns=1)
    with transaction(sessions) as session:
        assert store.finish_task(session.connection(), task_id, 2, outcome)
    with transaction(sessions) as session:
        task = store.get_task(session.connection(), task_id)
    assert (task.input_tokens, task.output_tokens, task.cache_read_input_tokens,
            task.cache_creation_input_tokens) == (130, 13, 7, 2)
    assert task.cost_usd == pytest.approx(0.75)
    assert task.num_turns == 1  # the turns of the run that produced the result


def test_a_cancelled_task_never_starts(sessions):
    task_id = new_task(sessions)
    with transaction(sessions) as session:
        store.cancel_task(session.connection(), task_id)
    assert claim(sessions, task_id) is None


def test_cancelling_a_running_task_is_seen_at_the_next_heartbeat(sessions):
    task_id = new_task(sessions)
    claim(sessions, task_id)
    with transaction(sessions) as session:
        assert store.renew_lease(session.connection(), task_id, 1, 30).cancel_requested is False
        assert store.cancel_task(session.connection(), task_id).status == "running"
    with transaction(sessions) as session:
        lease = store.renew_lease(session.connection(), task_id, 1, 30, {"input_tokens": 10, "num_turns": 1})
        assert lease.owned and lease.cancel_requested
        assert store.get_task(session.connection(), task_id).input_tokens == 10


def test_attempts_are_bounded(sessions):
    task_id = new_task(sessions)
    for _ in range(2):
        assert claim(sessions, task_id, max_attempts=2) is not None
        expire_lease(sessions, task_id)
    assert claim(sessions, task_id, max_attempts=2) is None
    with transaction(sessions) as session:
        ended = store.end_abandoned(session.connection(), max_attempts=2)
    assert [str(i) for i in ended] == [task_id]
    with transaction(sessions) as session:
        task = store.get_task(session.connection(), task_id)
    assert (task.status, task.error_code) == ("failed", "worker_lost")


def test_a_lost_run_that_was_cancelled_ends_cancelled(sessions):
    task_id = new_task(sessions)
    claim(sessions, task_id)
    with transaction(sessions) as session:
        store.cancel_task(session.connection(), task_id)
    expire_lease(sessions, task_id)
    with transaction(sessions) as session:
        store.end_abandoned(session.connection(), max_attempts=3)
        assert store.get_task(session.connection(), task_id).status == "cancelled"


def test_resend_picks_orphaned_runs_and_long_queued_tasks_of_a_short_queue_once(sessions):
    orphan = new_task(sessions)
    claim(sessions, orphan)
    expire_lease(sessions, orphan)
    fresh = new_task(sessions)
    stale = new_task(sessions)
    with transaction(sessions) as session:
        session.execute(update(Task).where(Task.id == store.parse_task_id(stale))
                        .values(sent_at=text("now() - interval '10 minutes'")))
    with transaction(sessions) as session:  # its queue holds every message: it waits its turn
        picked = {str(task.id) for task in store.resend_candidates(session.connection(), resend_after_s=300)}
    assert picked == {orphan}
    with transaction(sessions) as session:
        picked = {str(task.id) for task in store.resend_candidates(
            session.connection(), resend_after_s=300, short={"other", "cca"})}
    assert picked == {stale}
    assert fresh not in picked
    with transaction(sessions) as session:
        assert store.resend_candidates(session.connection(), resend_after_s=300, short={"cca"}) == []


def test_a_task_redis_could_not_take_is_resent_at_the_next_sweep_and_a_held_one_is_not(sessions):
    unsent, held = new_task(sessions), new_task(sessions)
    claim(sessions, held)
    expire_lease(sessions, held)
    with transaction(sessions) as session:
        store.mark_unsent(session.connection(), unsent)
        picked = {str(task.id) for task in store.resend_candidates(
            session.connection(), resend_after_s=300, held={held})}
        ended = store.end_abandoned(session.connection(), max_attempts=1, held={held})
    assert picked == {unsent} and ended == []  # held: its run waits for Postgres, not dead
    with transaction(sessions) as session:
        assert store.resend_candidates(session.connection(), resend_after_s=300, held={held}) == []


def test_finish_requires_a_terminal_status():
    with pytest.raises(ValueError):
        Outcome(status="running")


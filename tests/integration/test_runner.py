"""run_task through its seams: the real store on Postgres, the real event sink on Redis, and a
replayed agent in place of the process (the launcher) on a fake clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import text

from cca_core.access.keys import Quotas, create_key
from cca_core.infra.db import make_engine, make_session_factory, transaction
from cca_core.tasks import store
from cca_worker.runner import WorkerContext, run_task
from tests.fakes.agent import FakeClock, ReplayedAgent, transcript

pytestmark = pytest.mark.integration

# A row as submission makes it: the limits are decided there.
ROW = {"prompt": "p", "token_budget": 100000, "timeout_seconds": 600}


@pytest.fixture
def context(make_settings, redis_url):
    settings = make_settings(agents={"confinement": "none"})
    engine = make_engine(settings.postgres.url, pool_size=2)
    yield WorkerContext(settings=settings, hostname="w1", slot=0, engine=engine,
                        redis=redis.Redis.from_url(redis_url))
    engine.dispose()


def submit(context: WorkerContext, **values) -> str:
    with transaction(make_session_factory(context.engine)) as session:
        task, _ = store.create_task(session.connection(), {**ROW, **values})
    return str(task.id)


class Launcher:
    """Starts a replay of one transcript and keeps what it was asked to start."""

    def __init__(self, name: str, clock: FakeClock, **agent) -> None:
        self.lines, self.clock, self.agent = transcript(name), clock, agent
        self.calls: list[dict] = []

    def __call__(self, argv, *, env, cwd, grace_s, nice) -> ReplayedAgent:
        self.calls.append({"argv": argv, "env": env, "cwd": cwd, "grace_s": grace_s, "nice": nice})
        return ReplayedAgent(self.lines, self.clock, **self.agent)


def row(context: WorkerContext, task_id: str):
    with transaction(make_session_factory(context.engine)) as session:
        return store.get_task(session.connection(), task_id)


def test_a_replayed_success_is_recorded_with_its_events(context):
    task_id = submit(context)
    clock = FakeClock()
    launcher = Launcher("tool_success", clock)
    assert run_task(context, task_id, launcher=launcher, clock=clock) == "succeeded"
    task = row(context, task_id)
    assert (task.status, task.result) == ("succeeded", "saw: recorded-marker")
    assert task.input_tokens == 2200 and task.attempts == 1
    [call] = launcher.calls
    assert call["argv"][0] == context.settings.agents.claude_path
    assert call["grace_s"] == context.settings.agents.stop_grace_seconds
    assert call["nice"] == context.settings.agents.nice == 10
    assert call["env"]["HOME"] == str(context.slot_home)
    with transaction(make_session_factory(context.engine)) as session:
        events = store.list_events(session.connection(), task_id)
    assert events[-1].data["type"] == "result"


def test_a_cancel_recorded_in_the_row_stops_the_replay(context):
    task_id = submit(context)
    clock = FakeClock()

    class CancelOnStart(Launcher):
        def __call__(self, argv, **kwargs):
            with transaction(make_session_factory(context.engine)) as session:
                store.cancel_task(session.connection(), task_id)
            return super().__call__(argv, **kwargs)

    launcher = CancelOnStart("tool_success", clock, hang_after=3)
    assert run_task(context, task_id, launcher=launcher, clock=clock) == "cancelled"
    assert row(context, task_id).error_code == "cancelled"


def test_a_delivery_of_a_finished_task_starts_nothing(context):
    task_id = submit(context, retries={"rate_limited": {"attempts": 1}})
    clock = FakeClock()
    run_task(context, task_id, launcher=Launcher("rate_limited", clock, exit_code=1), clock=clock)
    again = Launcher("tool_success", clock)
    assert run_task(context, task_id, launcher=again, clock=clock) is None
    assert again.calls == [] and row(context, task_id).error_code == "rate_limited"


def attempts(context: WorkerContext, task_id: str):
    with transaction(make_session_factory(context.engine)) as session:
        return store.list_attempts(session.connection(), task_id)


def test_a_rate_limited_run_parks_its_task_until_its_retry_is_due(context):
    task_id = submit(context)
    clock = FakeClock()
    before = datetime.now(UTC)
    run = Launcher("rate_limited", clock, exit_code=1)
    assert run_task(context, task_id, launcher=run, clock=clock) == "queued"
    parked = row(context, task_id)
    assert (parked.status, parked.waiting_for, parked.error_code) == ("queued", "retry", "rate_limited")
    # The default rule waits 60 s before the first retry, less up to a quarter of it.
    assert before + timedelta(seconds=45) <= parked.retry_at <= datetime.now(UTC) + timedelta(seconds=60)
    [first] = attempts(context, task_id)
    assert (first.attempt, first.worker, first.status, first.error_code) == (
        1, "w1", "failed", "rate_limited")
    assert first.retry_at == parked.retry_at and first.finished_at is not None

    early = Launcher("tool_success", clock)
    assert run_task(context, task_id, launcher=early, clock=clock) is None and early.calls == []
    with transaction(make_session_factory(context.engine)) as session:
        assert store.release_due_retries(session.connection()) == []
        session.execute(text("UPDATE tasks SET retry_at = now() WHERE id = :id"), {"id": task_id})
        [due] = store.release_due_retries(session.connection())
    assert str(due.id) == task_id and due.waiting_for is None

    assert run_task(context, task_id, launcher=Launcher("tool_success", clock), clock=clock) == "succeeded"
    done = row(context, task_id)
    assert (done.status, done.attempts, done.retried, done.error_code) == ("succeeded", 2, 1, None)
    assert [(a.attempt, a.status, a.retry_at is None) for a in attempts(context, task_id)] == [
        (1, "failed", False), (2, "succeeded", True)]


def test_a_task_out_of_attempts_for_its_failure_class_fails(context):
    task_id = submit(context, retries={"rate_limited": {"attempts": 2, "backoff_seconds": 0}})
    clock = FakeClock()
    for expected in ("queued", "failed"):
        with transaction(make_session_factory(context.engine)) as session:
            store.release_due_retries(session.connection())
        assert run_task(context, task_id, launcher=Launcher("rate_limited", clock, exit_code=1),
                        clock=clock) == expected
    assert [a.error_code for a in attempts(context, task_id)] == ["rate_limited", "rate_limited"]
    assert row(context, task_id).retry_at is None


def test_a_role_sets_a_class_rule_and_the_task_overrides_it(make_settings, redis_url):
    settings = make_settings(agents={"confinement": "none", "roles": {"qa": {
        "retries": {"crashed": {"attempts": 1}, "rate_limited": {"attempts": 1}}}}})
    engine = make_engine(settings.postgres.url, pool_size=2)
    context = WorkerContext(settings=settings, hostname="w1", slot=0, engine=engine,
                            redis=redis.Redis.from_url(redis_url))
    clock = FakeClock()
    by_role = submit(context, role="qa")
    assert run_task(context, by_role, launcher=Launcher("rate_limited", clock, exit_code=1),
                    clock=clock) == "failed"
    by_task = submit(context, role="qa", retries={"rate_limited": {"attempts": 3}})
    assert run_task(context, by_task, launcher=Launcher("rate_limited", clock, exit_code=1),
                    clock=clock) == "queued"
    engine.dispose()


def test_a_cancel_requested_during_a_failing_run_ends_it_instead_of_parking(context):
    task_id = submit(context)
    clock = FakeClock()

    class CancelOnStart(Launcher):
        def __call__(self, argv, **kwargs):
            with transaction(make_session_factory(context.engine)) as session:
                session.execute(text("UPDATE tasks SET cancel_requested_at = now() WHERE id = :id"),
                                {"id": task_id})
            return super().__call__(argv, **kwargs)

    assert run_task(context, task_id, launcher=CancelOnStart("rate_limited", clock, exit_code=1),
                    clock=clock) in ("failed", "cancelled")
    ended = row(context, task_id)
    assert ended.status in ("failed", "cancelled") and ended.waiting_for is None
    assert [a.retry_at for a in attempts(context, task_id)] == [None]


# -- budgets charged while the run streams -------------------------------------------------------

def test_a_keys_daily_quota_stops_its_run_within_one_message(context, redis_client):
    with transaction(make_session_factory(context.engine)) as session:
        create_key(session, "nightly", "submitter", quotas=Quotas(tokens_per_day=1500))
    task_id = submit(context, created_by="nightly", timeout_seconds=30)
    clock = FakeClock()
    # Its first message costs 1000 + 40 + 50 tokens, the second 1200 + 70: the second crosses.
    assert run_task(context, task_id, launcher=Launcher("tool_success", clock, hang_after=22),
                    clock=clock) == "budget_exceeded"
    ended = row(context, task_id)
    assert (ended.error_code, ended.status) == ("quota_exceeded", "budget_exceeded")
    day = datetime.now(UTC).strftime("%Y%m%d")
    assert int(redis_client.get(f"cca:spend:nightly:{day}")) == 1090 + 1201
    assert ended.input_tokens + ended.output_tokens + ended.cache_creation_input_tokens <= 1090 + 1270


def test_a_worker_over_its_window_parks_its_run_for_another_worker(make_settings, redis_url):
    settings = make_settings(agents={"confinement": "none"},
                             worker={"token_budget_per_window": 1000, "budget_window_seconds": 600})
    engine = make_engine(settings.postgres.url, pool_size=2)
    context = WorkerContext(settings=settings, hostname=f"w-{uuid.uuid4().hex[:6]}", slot=0,
                            engine=engine, redis=redis.Redis.from_url(redis_url))
    task_id = submit(context, timeout_seconds=30)
    clock = FakeClock()
    assert run_task(context, task_id, launcher=Launcher("tool_success", clock, hang_after=22),
                    clock=clock) == "queued"
    parked = row(context, task_id)
    assert (parked.waiting_for, parked.error_code) == ("retry", "worker_budget_exceeded")
    assert parked.retry_at <= datetime.now(UTC)
    # The sweep sends it again at once; if this worker takes it before its gate pauses it, it
    # leaves it for another worker, unclaimed: no attempt spent, nothing started.
    with transaction(make_session_factory(engine)) as session:
        assert [task.id for task in store.release_due_retries(session.connection())] == [parked.id]
    again = Launcher("tool_success", clock)
    assert run_task(context, task_id, launcher=again, clock=clock) is None
    left = row(context, task_id)
    assert again.calls == [] and (left.status, left.attempts, left.waiting_for) == ("queued", 1, "retry")
    assert left.retry_at <= datetime.now(UTC)
    engine.dispose()


def test_a_task_whose_key_is_already_over_its_quota_does_not_start(context, redis_client):
    with transaction(make_session_factory(context.engine)) as session:
        create_key(session, "spent", "submitter", quotas=Quotas(tokens_per_day=100))
    redis_client.set(f"cca:spend:spent:{datetime.now(UTC).strftime('%Y%m%d')}", 150)
    task_id = submit(context, created_by="spent")
    launcher = Launcher("tool_success", FakeClock())
    assert run_task(context, task_id, launcher=launcher, clock=FakeClock()) == "budget_exceeded"
    assert launcher.calls == [] and row(context, task_id).error_code == "quota_exceeded"

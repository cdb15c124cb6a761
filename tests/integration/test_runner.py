"""run_task through its seams: the real store on Postgres, the real event sink on Redis, and a
replayed agent in place of the process (the launcher) on a fake clock."""

from __future__ import annotations

import pytest
import redis

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

    def __call__(self, argv, *, env, cwd, grace_s) -> ReplayedAgent:
        self.calls.append({"argv": argv, "env": env, "cwd": cwd, "grace_s": grace_s})
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
    task_id = submit(context)
    clock = FakeClock()
    run_task(context, task_id, launcher=Launcher("rate_limited", clock, exit_code=1), clock=clock)
    again = Launcher("tool_success", clock)
    assert run_task(context, task_id, launcher=again, clock=clock) is None
    assert again.calls == [] and row(context, task_id).error_code == "api_error_429"

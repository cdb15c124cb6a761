"""Firing schedules on real Postgres: the dedupe key, overlap, catch-up and expiry policies,
run now, and expired messages on a real worker."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from celery import Celery
from sqlalchemy import select

from cca_core.access.keys import Quotas, create_key
from cca_core.errors import Invalid, NotFound, QuotaExceeded
from cca_core.infra.db import make_engine, make_session_factory, transaction
from cca_core.models import Schedule, Task
from cca_core.schedules import firing
from cca_core.schedules import store as schedule_store
from cca_core.schedules.lifecycle import check_template
from cca_core.tasks import store
from cca_core.tasks.dispatch import celery_config
from cca_core.tasks.outcome import Outcome
from cca_core.tasks.submission import enqueue
from cca_core.webhooks import store as webhooks
from tests.support.schedules import backdate, edit_schedule, get, make_schedule, runs
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(make_settings):
    return make_settings()


@pytest.fixture
def sessions(database_url):
    engine = make_engine(database_url, pool_size=4)
    yield make_session_factory(engine)
    engine.dispose()


def fire(sessions, settings, grace_s: float = 60):
    with transaction(sessions) as session:
        return firing.fire_due(session, agents=settings.agents, default_queue="cca", grace_s=grace_s,
                               max_fires=100)


def make_due(sessions, schedule_id: str) -> None:
    """Bring the next fire to now, keeping the schedule's grid."""
    schedule = get(sessions, schedule_id)
    with transaction(sessions) as session:
        late = schedule_store.db_now(session) - schedule.next_fire_at
    backdate(sessions, schedule_id, -late.total_seconds() + 0.001)


def claim(sessions, task_id) -> None:
    with transaction(sessions) as session:
        assert store.claim_task(session.connection(), str(task_id), worker="w", pid=1,
                                lease_s=60, max_attempts=3)


def test_a_due_schedule_fires_one_task_linked_by_schedule_and_fire_time(sessions, settings):
    schedule_id = make_schedule(sessions, settings, interval_seconds=60, expires_seconds=30,
                                prompt="review yesterday's commits")
    assert fire(sessions, settings) == []
    make_due(sessions, schedule_id)
    due_at = get(sessions, schedule_id).next_fire_at
    [task] = fire(sessions, settings)
    assert (str(task.schedule_id), task.scheduled_for) == (schedule_id, due_at)
    assert (task.owner, task.created_by, task.prompt) == ("team", "tester", "review yesterday's commits")
    assert task.expires_at == due_at + timedelta(seconds=30)
    assert task.status == "queued" and task.token_budget == 100000 and task.queue == "cca"
    schedule = get(sessions, schedule_id)
    assert schedule.next_fire_at == due_at + timedelta(seconds=60)
    assert (schedule.last_fire_at, schedule.last_task_id) == (due_at, task.id)
    assert fire(sessions, settings) == []


def test_two_beats_firing_the_same_moment_make_one_task(sessions, settings):
    schedule_id = make_schedule(sessions, settings, interval_seconds=60)
    make_due(sessions, schedule_id)
    results: dict[str, list] = {}

    def fire_as(name: str, session) -> None:
        schedule = session.get(Schedule, uuid.UUID(schedule_id))  # no row lock: two leaders
        results[name] = firing.fire_schedule(
            session, schedule, schedule_store.db_now(session), agents=settings.agents,
            default_queue="cca", grace_s=60, max_fires=10)

    with sessions() as first, sessions() as second:
        fire_as("first", first)
        racer = threading.Thread(target=fire_as, args=("second", second))
        racer.start()  # its insert waits on the first's uncommitted row, then conflicts
        first.commit()
        racer.join(10)
        second.commit()
    assert len(results["first"]) == 1 and results["second"] == []
    assert len(runs(sessions, schedule_id)) == 1


@pytest.mark.parametrize("previous_status", ["queued", "running"])
def test_overlap_skip_fires_nothing_while_the_previous_run_is_going(sessions, settings,
                                                                  previous_status):
    schedule_id = make_schedule(sessions, settings, interval_seconds=60, overlap="skip")
    make_due(sessions, schedule_id)
    [first] = fire(sessions, settings)
    if previous_status == "running":
        claim(sessions, first.id)
    make_due(sessions, schedule_id)
    assert fire(sessions, settings) == []
    schedule = get(sessions, schedule_id)
    assert f"previous run {first.id} is still {previous_status}" in schedule.last_skip_reason
    with transaction(sessions) as session:
        store.cancel_task(session.connection(), str(first.id))
        if previous_status == "running":
            store.finish_task(session.connection(), str(first.id), 1, Outcome(status="succeeded"))
    make_due(sessions, schedule_id)
    assert len(fire(sessions, settings)) == 1


def test_overlap_allow_fires_beside_a_running_run(sessions, settings):
    schedule_id = make_schedule(sessions, settings, interval_seconds=60, overlap="allow")
    make_due(sessions, schedule_id)
    [first] = fire(sessions, settings)
    claim(sessions, first.id)
    make_due(sessions, schedule_id)
    assert len(fire(sessions, settings)) == 1
    assert [task.status for task in runs(sessions, schedule_id)] == ["running", "queued"]


def test_overlap_cancel_previous_stops_the_previous_run_and_fires(sessions, settings):
    schedule_id = make_schedule(sessions, settings, interval_seconds=60, overlap="cancel_previous")
    make_due(sessions, schedule_id)
    [running] = fire(sessions, settings)
    claim(sessions, running.id)
    make_due(sessions, schedule_id)
    [queued] = fire(sessions, settings)
    make_due(sessions, schedule_id)
    [latest] = fire(sessions, settings)
    by_id = {task.id: task for task in runs(sessions, schedule_id)}
    assert by_id[running.id].status == "running" and by_id[running.id].cancel_requested_at
    assert by_id[queued.id].status == "cancelled"
    assert by_id[latest.id].status == "queued"


def test_skip_missed_runs_nothing_for_the_downtime_and_goes_on(sessions, settings):
    schedule_id = make_schedule(sessions, settings, interval_seconds=600, catchup="skip_missed")
    backdate(sessions, schedule_id, 3600 + 300)  # six fires passed while no beat ran
    assert fire(sessions, settings, grace_s=60) == []
    schedule = get(sessions, schedule_id)
    assert "missed" in schedule.last_skip_reason
    with transaction(sessions) as session:
        assert schedule.next_fire_at > schedule_store.db_now(session)


def test_run_once_runs_one_task_for_the_downtime_at_the_latest_missed_time(sessions, settings):
    schedule_id = make_schedule(sessions, settings, interval_seconds=600, catchup="run_once")
    created = get(sessions, schedule_id).anchor_at
    backdate(sessions, schedule_id, 3600 + 300)
    [task] = fire(sessions, settings, grace_s=60)
    assert task.scheduled_for == created - timedelta(seconds=300)
    assert fire(sessions, settings, grace_s=60) == []


def test_fires_late_within_the_grace_each_run_once(sessions, settings):
    schedule_id = make_schedule(sessions, settings, interval_seconds=600, overlap="allow")
    backdate(sessions, schedule_id, 3600 + 300)
    assert len(fire(sessions, settings, grace_s=7200)) == 6
    assert fire(sessions, settings, grace_s=7200) == []


def test_stale_fires_are_dropped_after_expires_seconds(sessions, settings):
    schedule_id = make_schedule(sessions, settings, interval_seconds=60, catchup="run_once",
                                expires_seconds=90, overlap="allow")
    backdate(sessions, schedule_id, 60 * 5)
    tasks = fire(sessions, settings, grace_s=3600)
    with transaction(sessions) as session:
        now = schedule_store.db_now(session)
    assert tasks and all(now - task.scheduled_for <= timedelta(seconds=90) for task in tasks)
    assert "older than expires_seconds" in get(sessions, schedule_id).last_skip_reason


def test_a_template_the_fleet_no_longer_accepts_skips_the_fire(sessions, settings, make_settings,
                                                              tmp_path):
    repo = tmp_path / "roots/repo"
    repo.mkdir()
    schedule_id = make_schedule(sessions, settings, interval_seconds=60)
    edit_schedule(sessions, settings, schedule_id, task={"cwd": str(repo)})
    make_due(sessions, schedule_id)
    stricter = make_settings(agents={"allowed_roots": [str(tmp_path / "elsewhere")]})
    assert fire(sessions, stricter) == []
    assert "cwd" in get(sessions, schedule_id).last_skip_reason
    assert get(sessions, schedule_id).next_fire_at > get(sessions, schedule_id).last_skip_at


def test_run_now_fires_even_when_paused_and_only_for_the_owner(sessions, settings):
    schedule_id = make_schedule(sessions, settings, interval_seconds=3600, enabled=False)
    with transaction(sessions) as session:
        task = firing.run_now(session, schedule_id, "team", agents=settings.agents,
                              default_queue="cca")
    assert str(task.schedule_id) == schedule_id and task.scheduled_for
    assert get(sessions, schedule_id).next_fire_at is None
    with pytest.raises(NotFound), transaction(sessions) as session:
        firing.run_now(session, schedule_id, "other-team", agents=settings.agents,
                       default_queue="cca")


def test_fires_count_against_the_quotas_of_the_key_that_created_the_schedule(sessions,
                                                                            settings):
    with transaction(sessions) as session:
        create_key(session, "tester", "submitter", tenant="team", quotas=Quotas(max_concurrent=1))
    schedule_id = make_schedule(sessions, settings, interval_seconds=60, overlap="allow")
    make_due(sessions, schedule_id)
    [first] = fire(sessions, settings)

    with transaction(sessions) as session:  # the tenant's webhook is told of the failed fire
        hook = webhooks.create(session.connection(), owner="team", url="https://1.1.1.1/", secret="s",
                               events=["schedule.fire_failed"], allow_private=False,
                               description=None, created_by="tester")
    make_due(sessions, schedule_id)
    assert fire(sessions, settings) == []
    assert "the key's limit is 1" in get(sessions, schedule_id).last_skip_reason
    with transaction(sessions) as session:
        [told] = webhooks.deliveries(session.connection(), str(hook.id), None, before=None, limit=5)
    assert told.event == "schedule.fire_failed" and told.payload["schedule"]["id"] == schedule_id
    assert "the key's limit is 1" in told.payload["schedule"]["reason"]
    with pytest.raises(QuotaExceeded), transaction(sessions) as session:
        firing.run_now(session, schedule_id, "team", agents=settings.agents, default_queue="cca")

    with transaction(sessions) as session:
        store.cancel_task(session.connection(), str(first.id))
    make_due(sessions, schedule_id)
    assert len(fire(sessions, settings)) == 1


def test_a_paused_schedule_never_fires_and_resumes_from_now(sessions, settings):
    schedule_id = make_schedule(sessions, settings, interval_seconds=60)
    edit_schedule(sessions, settings, schedule_id, enabled=False)
    backdate(sessions, schedule_id, 3600)
    assert fire(sessions, settings) == []
    resumed = edit_schedule(sessions, settings, schedule_id, enabled=True)
    with transaction(sessions) as session:
        now = schedule_store.db_now(session)
    assert now < resumed.next_fire_at <= now + timedelta(seconds=60)


def test_a_deleted_schedule_leaves_its_tasks_unlinked(sessions, settings):
    schedule_id = make_schedule(sessions, settings, interval_seconds=60)
    make_due(sessions, schedule_id)
    [task] = fire(sessions, settings)
    with transaction(sessions) as session:
        schedule_store.delete_schedule(session, schedule_id)
    with transaction(sessions) as session:
        assert store.get_task(session.connection(), str(task.id)).schedule_id is None
        with pytest.raises(NotFound):
            schedule_store.get_schedule(session, schedule_id)


def test_a_template_with_a_parent_is_refused(settings):
    with pytest.raises(Invalid) as refused:
        check_template({"prompt": "p", "parent_id": str(uuid.uuid4())}, settings.agents, "cca")
    assert refused.value.field == "task.parent_id"


def test_a_fire_whose_message_expired_in_the_queue_ends_expired(sessions, settings, start_worker,
                                                                redis_url):
    schedule_id = make_schedule(sessions, settings, interval_seconds=3600, expires_seconds=1)
    with transaction(sessions) as session:
        task = firing.run_now(session, schedule_id, None, agents=settings.agents, default_queue="cca")
    producer = Celery("test-producer")
    producer.conf.update(celery_config(redis_url, 3600))
    assert enqueue(producer, task)
    with transaction(sessions) as session:
        wait_for(lambda: schedule_store.db_now(session) > task.expires_at, timeout_s=5,
                 message="the fire to expire")
    start_worker("w1")

    def ended():
        with transaction(sessions) as session:
            row = session.scalars(select(Task).where(Task.id == task.id)).one()
            return row if row.status != "queued" else None

    row = wait_for(ended, timeout_s=30, message="the expired task to end")
    assert (row.status, row.error_code, row.attempts) == ("cancelled", "expired", 0)

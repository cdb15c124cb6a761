"""Which fires run now: on time, late within the grace, missed during downtime, stale."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from cca_core.schedules.catchup import plan_fires
from cca_core.schedules.cron import Timing

ANCHOR = datetime(2025, 5, 1, 12, tzinfo=UTC)
EVERY_10S = Timing(interval_s=10, anchor=ANCHOR)


def at(seconds: float) -> datetime:
    return ANCHOR + timedelta(seconds=seconds)


def plan(due_s: float, now_s: float, *, catchup="skip_missed", grace_s=30.0, expires_s=None, limit=100):
    return plan_fires(EVERY_10S, at(due_s), at(now_s), catchup=catchup, grace_s=grace_s,
                      expires_s=expires_s, limit=limit)


def test_a_fire_that_is_due_runs_once_and_the_next_one_follows_on_the_grid():
    result = plan(10, 10.2)
    assert result.fires == (at(10),)
    assert result.next_fire_at == at(20) and not result.missed and result.stale == 0


def test_fires_late_within_the_grace_all_run_as_after_a_fail_over():
    result = plan(10, 35)
    assert result.fires == (at(10), at(20), at(30)) and not result.missed
    assert result.next_fire_at == at(40)


def test_skip_missed_runs_none_of_the_fires_older_than_the_grace():
    result = plan(10, 3605, grace_s=30)
    assert result.missed
    assert result.fires == (at(3580), at(3590), at(3600))  # the ones within the grace still run
    assert result.next_fire_at == at(3610)


def test_run_once_runs_one_fire_for_everything_missed_stamped_with_the_latest_missed_time():
    result = plan(10, 3605, catchup="run_once", grace_s=0)
    assert result.fires == (at(3600),)
    result = plan(10, 3605, catchup="run_once", grace_s=30)
    assert result.fires == (at(3570), at(3580), at(3590), at(3600))


def test_stale_fires_are_dropped_whatever_the_policy():
    result = plan(10, 3605, catchup="run_once", grace_s=0, expires_s=4)
    assert result.fires == () and result.stale == 1
    result = plan(10, 35, expires_s=12)
    assert result.fires == (at(30),) and result.stale == 2


def test_a_limit_leaves_the_rest_for_the_next_tick():
    result = plan(10, 55, limit=2, grace_s=60)
    assert result.fires == (at(10), at(20))
    assert result.next_fire_at == at(30)


def test_nothing_is_due_before_its_time():
    result = plan(10, 9)
    assert result.fires == () and result.next_fire_at == at(10)


def test_a_year_of_downtime_is_planned_quickly():
    started = time.monotonic()
    a_year_later = ANCHOR + timedelta(days=365)
    result = plan_fires(Timing(cron="* * * * *", timezone="UTC"), ANCHOR,
                        a_year_later + timedelta(seconds=30), catchup="run_once", grace_s=0,
                        expires_s=None, limit=100)
    assert result.fires == (a_year_later,)
    assert result.next_fire_at == a_year_later + timedelta(minutes=1)
    assert time.monotonic() - started < 1.0

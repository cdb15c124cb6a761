"""Fire times: cron expressions in a time zone across DST changes, interval grids, validation."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cca_core.schedules.cron import Timing, check_cron, check_timezone, last_fire_before, next_fire


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def fires(timing: Timing, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time in (start, end], by repeatedly asking for the next one."""
    found, current = [], start
    while (current := next_fire(timing, current)) <= end:
        found.append(current)
    return found


def local(times: list[datetime], zone: str) -> list[str]:
    return [t.astimezone(ZoneInfo(zone)).strftime("%m-%d %H:%M %Z") for t in times]


def test_a_weekday_morning_job_skips_the_weekend():
    timing = Timing(cron="0 7 * * 1-5", timezone="UTC")
    assert next_fire(timing, utc(2025, 3, 28, 12)) == utc(2025, 3, 31, 7)  # Friday noon -> Monday


def test_a_cron_job_runs_at_the_wall_clock_time_of_its_zone_in_summer_and_winter():
    timing = Timing(cron="0 7 * * *", timezone="Europe/Berlin")
    assert next_fire(timing, utc(2025, 1, 10)) == utc(2025, 1, 10, 6)
    assert next_fire(timing, utc(2025, 7, 10)) == utc(2025, 7, 10, 5)


@pytest.mark.parametrize(("zone", "expression", "day", "expected"), [
    # spring forward: 02:00 -> 03:00, 02:30 does not exist; it runs once, right after the jump
    ("Europe/Berlin", "30 2 * * *", (2025, 3, 30), ["03-29 02:30 CET", "03-30 03:00 CEST",
                                                    "03-31 02:30 CEST"]),
    # fall back: 03:00 -> 02:00, 02:30 happens twice; it runs once, in the first pass
    ("Europe/Berlin", "30 2 * * *", (2025, 10, 26), ["10-25 02:30 CEST", "10-26 02:30 CEST",
                                                     "10-27 02:30 CET"]),
    ("America/New_York", "30 2 * * *", (2025, 3, 9), ["03-08 02:30 EST", "03-09 03:00 EDT",
                                                      "03-10 02:30 EDT"]),
    ("America/New_York", "30 1 * * *", (2025, 11, 2), ["11-01 01:30 EDT", "11-02 01:30 EDT",
                                                       "11-03 01:30 EST"]),
])
def test_a_fixed_time_job_fires_exactly_once_on_a_dst_day(zone, expression, day, expected):
    timing = Timing(cron=expression, timezone=zone)
    start = datetime(*day, tzinfo=ZoneInfo(zone)) - timedelta(days=1)
    assert local(fires(timing, start, start + timedelta(days=3)), zone) == expected


def test_an_hourly_job_fires_in_both_passes_of_the_repeated_hour_and_skips_the_lost_one():
    timing = Timing(cron="30 * * * *", timezone="Europe/Berlin")
    fall = fires(timing, utc(2025, 10, 25, 22), utc(2025, 10, 26, 23))  # the local day of 25 hours
    assert len(fall) == 25
    assert local(fall[2:4], "Europe/Berlin") == ["10-26 02:30 CEST", "10-26 02:30 CET"]
    spring = fires(timing, utc(2025, 3, 29, 23), utc(2025, 3, 30, 22))  # the local day of 23 hours
    assert len(spring) == 23
    assert "03-30 02:30" not in " ".join(local(spring, "Europe/Berlin"))


def test_the_next_fire_from_inside_the_repeated_hour_does_not_repeat_the_job():
    timing = Timing(cron="30 2 * * *", timezone="Europe/Berlin")
    second_pass = utc(2025, 10, 26, 1, 0)  # 02:00 CET, after 02:30 CEST already fired
    assert next_fire(timing, second_pass) == utc(2025, 10, 27, 1, 30)


def test_next_fire_is_strictly_after_the_given_time():
    timing = Timing(cron="*/5 * * * *", timezone="UTC")
    assert next_fire(timing, utc(2025, 5, 1, 10, 5)) == utc(2025, 5, 1, 10, 10)
    assert next_fire(timing, utc(2025, 5, 1, 10, 4, 59)) == utc(2025, 5, 1, 10, 5)


def test_an_interval_fires_on_a_grid_from_its_anchor():
    anchor = utc(2025, 5, 1, 10, 0, 0)
    timing = Timing(interval_s=30, anchor=anchor)
    assert next_fire(timing, anchor) == anchor + timedelta(seconds=30)
    assert next_fire(timing, anchor - timedelta(hours=1)) == anchor + timedelta(seconds=30)
    assert next_fire(timing, anchor + timedelta(seconds=95)) == anchor + timedelta(seconds=120)
    assert next_fire(timing, anchor + timedelta(seconds=120)) == anchor + timedelta(seconds=150)


def test_a_timing_has_a_cron_or_an_interval():
    with pytest.raises(ValueError):
        Timing()
    with pytest.raises(ValueError):
        Timing(cron="* * * * *", interval_s=5, anchor=utc(2025, 1, 1))
    with pytest.raises(ValueError):
        Timing(interval_s=5)


def test_the_last_fire_before_a_time_is_found_on_grids_and_crons():
    anchor = utc(2025, 5, 1)
    grid = Timing(interval_s=7, anchor=anchor)
    first = anchor + timedelta(seconds=7)
    assert last_fire_before(grid, anchor + timedelta(seconds=100), first) == anchor + timedelta(seconds=98)
    assert last_fire_before(grid, anchor + timedelta(seconds=98), first) == anchor + timedelta(seconds=91)
    cron = Timing(cron="0 7 * * 1-5", timezone="Europe/Berlin")
    monday = utc(2025, 3, 31, 5)
    assert last_fire_before(cron, utc(2025, 4, 6, 12), monday) == utc(2025, 4, 4, 5)  # that Friday


def test_finding_the_last_fire_after_a_year_of_minutely_fires_is_quick():
    cron = Timing(cron="* * * * *", timezone="UTC")
    started = time.monotonic()
    assert last_fire_before(cron, utc(2026, 5, 1, 12, 0, 30), utc(2025, 5, 1)) == utc(2026, 5, 1, 12)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("expression", ["* * * *", "* * * * * *", "61 * * * *", "@daily",
                                        "0 0 30 2 *", "*/0 * * * *", "a b c d e", ""])
def test_an_invalid_cron_expression_says_why(expression):
    with pytest.raises(ValueError, match="cron expression"):
        check_cron(expression)


def test_a_cron_expression_is_normalised():
    assert check_cron("  0  7 * *   MON-FRI ") == "0 7 * * MON-FRI"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "", "CEST+2"])
def test_an_unknown_time_zone_is_refused(zone):
    with pytest.raises(ValueError, match="time zone"):
        check_timezone(zone)

"""`cca schedules` and `cca beat` as a user runs them, against a real API process."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import cca

pytestmark = pytest.mark.integration



def test_a_schedule_is_added_listed_edited_paused_run_shown_and_removed(fleet_env, api_url):
    def ok(*args: str) -> str:
        result = cca("--api-url", api_url, *args, env=fleet_env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    added = json.loads(ok("schedules", "add", "nightly", "review yesterday's commits",
                          "--cron", "0 7 * * 1-5", "--tz", "Europe/Berlin", "--role", "qa",
                          "--overlap", "cancel_previous", "--json"))
    assert (added["cron"], added["timezone"], added["overlap"]) == ("0 7 * * 1-5", "Europe/Berlin",
                                                                    "cancel_previous")
    assert added["task"] == {"prompt": "review yesterday's commits", "role": "qa"}
    assert "nightly" in ok("schedules", "list")

    edited = json.loads(ok("schedules", "edit", "nightly", "--every", "30m", "--prompt", "triage",
                           "--json"))
    assert (edited["cron"], edited["interval_seconds"]) == (None, 1800)
    assert edited["task"] == {"prompt": "triage", "role": "qa"}

    assert "paused" in ok("schedules", "pause", "nightly")
    task_id = ok("schedules", "run", "nightly").strip()
    shown = json.loads(ok("schedules", "show", added["id"], "--json"))
    assert not shown["enabled"] and [run["task_id"] for run in shown["runs"]] == [task_id]
    assert "deleted" in ok("schedules", "rm", "nightly")


def test_schedule_errors_are_one_line_naming_the_field(fleet_env, api_url):
    bad = cca("--api-url", api_url, "schedules", "add", "x", "p", "--cron", "0 25 * * *", env=fleet_env)
    assert bad.returncode == 1 and "(field cron)" in bad.stderr and "Traceback" not in bad.stderr
    missing = cca("--api-url", api_url, "schedules", "show", "nope", env=fleet_env)
    assert missing.returncode == 1 and "no schedule named nope" in missing.stderr
    duration = cca("--api-url", api_url, "schedules", "add", "x", "p", "--every", "soon", env=fleet_env)
    assert duration.returncode == 2 and "duration" in duration.stderr


def test_beat_without_servers_says_what_to_set(base_env):
    result = cca("beat", env=base_env)
    assert result.returncode == 2 and "redis.url is not set" in result.stderr

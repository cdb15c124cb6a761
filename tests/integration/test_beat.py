"""Real `cca beat` processes on real Postgres and Redis: fires counted, edits without restarts,
two beats at once, fail-over after SIGKILL, overlap and catch-up policies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cca_core.infra.db import make_engine, make_session_factory, transaction
from cca_core.names import queue_keys
from cca_core.tasks import store
from cca_core.tasks.outcome import Outcome
from tests.support import toml
from tests.support.schedules import backdate, edit_schedule, fire_times, get, make_schedule, on_one_grid, runs
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
BEAT = {"tick_seconds": 0.5, "misfire_grace_seconds": 30, "leader_timeout_seconds": 5}


class BeatProcess:
    """A real `cca beat`, its log in a file."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.name, self.process, self.log = name, process, log

    def leading(self) -> bool:
        return "beat: leading" in self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def settings(make_settings):
    return make_settings(beat=BEAT)


@pytest.fixture
def sessions(database_url):
    engine = make_engine(database_url, pool_size=2)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def start_beat(tmp_path: Path, config_data: dict[str, Any]) -> Iterator[Callable[[str], BeatProcess]]:
    beats: list[BeatProcess] = []
    config = toml.write(tmp_path / "beat.toml", {**config_data, "beat": BEAT})

    def start(name: str) -> BeatProcess:
        log = tmp_path / f"{name}.log"
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CCA_CONFIG": str(config),
               "PYTHONPATH": str(REPO)}
        with log.open("wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "cca_cli.main", "beat"], env=env,
                                       stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, cwd=tmp_path)
        beat = BeatProcess(name, process, log)
        beats.append(beat)
        return beat

    yield start
    for beat in beats:
        beat.stop()


def messages(redis_client) -> list[str]:
    """The task ids of the run-agent messages waiting in Redis."""
    raw = [item for key in queue_keys("cca") for item in redis_client.lrange(key, 0, -1)]
    return [json.loads(item)["headers"]["argsrepr"].split(" · ")[0] for item in raw]


def at_least(sessions, schedule_id: str, count: int, timeout_s: float = 20) -> None:
    wait_for(lambda: len(runs(sessions, schedule_id)) >= count, timeout_s=timeout_s,
             message=f"{count} fires of {schedule_id}")


def test_an_interval_schedule_fires_once_per_interval_on_time(sessions, settings, start_beat,
                                                               redis_client):
    beat = start_beat("b1")
    wait_for(beat.leading, timeout_s=20, message="the beat to lead")
    schedule_id = make_schedule(sessions, settings, interval_seconds=1, overlap="allow")
    created = get(sessions, schedule_id).anchor_at
    at_least(sessions, schedule_id, 5)
    times = fire_times(sessions, schedule_id)
    assert on_one_grid(times, 1) and times[0] == created + timedelta(seconds=1)
    tasks = runs(sessions, schedule_id)
    wait_for(lambda: len(messages(redis_client)) >= len(tasks), timeout_s=5, message="the sends")
    assert sorted(messages(redis_client))[:len(tasks)] == sorted(str(t.id) for t in tasks)
    lateness = [(task.created_at - task.scheduled_for).total_seconds() for task in tasks]
    assert max(lateness) < BEAT["tick_seconds"] + 0.5, lateness  # a new schedule waits one tick


def test_edits_take_effect_without_a_restart(sessions, settings, start_beat):
    edited = make_schedule(sessions, settings, "edited", interval_seconds=1, overlap="allow")
    clock = make_schedule(sessions, settings, "clock", interval_seconds=1, overlap="allow")
    start_beat("b1")
    at_least(sessions, edited, 2)

    edit_schedule(sessions, settings, edited, task={"prompt": "the new prompt"})
    wait_for(lambda: runs(sessions, edited)[-1].prompt == "the new prompt", timeout_s=5,
             message="a fire with the new template")

    edit_schedule(sessions, settings, edited, enabled=False)
    paused_at = len(runs(sessions, edited))
    at_least(sessions, clock, len(runs(sessions, clock)) + 3)
    assert len(runs(sessions, edited)) == paused_at

    edit_schedule(sessions, settings, edited, enabled=True, interval_seconds=3600)
    at_least(sessions, clock, len(runs(sessions, clock)) + 3)
    assert len(runs(sessions, edited)) == paused_at

    edit_schedule(sessions, settings, edited, interval_seconds=1)
    at_least(sessions, edited, paused_at + 2, timeout_s=5)


def test_two_beats_at_once_fire_each_moment_once(sessions, settings, start_beat, redis_client):
    schedule_id = make_schedule(sessions, settings, interval_seconds=1, overlap="allow")
    beats = [start_beat("b1"), start_beat("b2")]
    at_least(sessions, schedule_id, 6)
    assert on_one_grid(fire_times(sessions, schedule_id), 1)
    assert sum(beat.leading() for beat in beats) == 1
    tasks = runs(sessions, schedule_id)
    wait_for(lambda: len(messages(redis_client)) >= len(tasks), timeout_s=5, message="the sends")
    assert len(set(messages(redis_client))) == len(messages(redis_client))


def test_killing_the_leader_lets_the_other_beat_take_over_losing_and_doubling_nothing(
        sessions, settings, start_beat, redis_client, record_property):
    schedule_id = make_schedule(sessions, settings, interval_seconds=1, overlap="allow")
    beats = [start_beat("b1"), start_beat("b2")]
    at_least(sessions, schedule_id, 3)
    leader = next(beat for beat in beats if beat.leading())
    standby = next(beat for beat in beats if beat is not leader)
    before = len(runs(sessions, schedule_id))

    killed_at = time.time()
    leader.process.send_signal(signal.SIGKILL)
    wait_for(standby.leading, timeout_s=10, message="the standby to lead")
    at_least(sessions, schedule_id, before + 4, timeout_s=10)
    first_after = next(task for task in runs(sessions, schedule_id)
                       if task.created_at.timestamp() > killed_at)
    takeover_s = first_after.created_at.timestamp() - killed_at
    record_property("takeover_s", round(takeover_s, 2))
    print(f"fail-over: first fire by the new leader {takeover_s:.2f}s after SIGKILL")
    assert takeover_s < 10
    times = fire_times(sessions, schedule_id)
    assert on_one_grid(times, 1), times
    assert len(set(messages(redis_client))) == len(messages(redis_client))


def test_overlap_skip_waits_for_the_running_task_to_end(sessions, settings, start_beat):
    skipping = make_schedule(sessions, settings, "skipping", interval_seconds=1, overlap="skip")
    clock = make_schedule(sessions, settings, "clock", interval_seconds=1, overlap="allow")
    start_beat("b1")
    at_least(sessions, skipping, 1)
    [first] = runs(sessions, skipping)
    with transaction(sessions) as session:
        assert store.claim_task(session.connection(), str(first.id), worker="w", pid=1,
                                lease_s=60, max_attempts=3)
    at_least(sessions, clock, len(runs(sessions, clock)) + 3)
    assert len(runs(sessions, skipping)) == 1
    assert "still running" in get(sessions, skipping).last_skip_reason
    with transaction(sessions) as session:
        store.finish_task(session.connection(), str(first.id), 1, Outcome(status="succeeded"))
    at_least(sessions, skipping, 2, timeout_s=5)


def test_after_downtime_skip_missed_fires_nothing_and_run_once_fires_once(sessions, settings,
                                                                          start_beat):
    skip = make_schedule(sessions, settings, "skip", interval_seconds=600, catchup="skip_missed")
    once = make_schedule(sessions, settings, "once", interval_seconds=600, catchup="run_once")
    for schedule_id in (skip, once):
        backdate(sessions, schedule_id, 3600 + 300)  # the beat was down for an hour
    start_beat("b1")
    at_least(sessions, once, 1)
    wait_for(lambda: get(sessions, skip).last_skip_reason, timeout_s=5, message="the skip")
    assert runs(sessions, skip) == []
    [caught_up] = runs(sessions, once)
    assert caught_up.scheduled_for == get(sessions, once).next_fire_at - timedelta(seconds=600)


def test_a_beat_stopped_with_sigterm_exits_at_once_and_hands_over(sessions, settings, start_beat):
    schedule_id = make_schedule(sessions, settings, interval_seconds=1, overlap="allow")
    beats = [start_beat("b1"), start_beat("b2")]
    at_least(sessions, schedule_id, 2)
    leader = next(beat for beat in beats if beat.leading())
    standby = next(beat for beat in beats if beat is not leader)
    leader.process.terminate()
    assert leader.process.wait(5) == 0
    wait_for(standby.leading, timeout_s=5, message="the standby to lead")
    before = len(runs(sessions, schedule_id))
    at_least(sessions, schedule_id, before + 2, timeout_s=5)
    assert on_one_grid(fire_times(sessions, schedule_id), 1)

"""A run left behind by a pool process that died with its shim (issue 19, item 5): a sandbox
whose bubblewrap was starting at that moment misses its parent-death signal, and its init
then waits for the agent's background processes for ever. The pool process that takes the
slot over kills every process tree carrying the slot's HOME as it starts, before any task
comes (it makes its context then: issue 19, item 4), and nothing else. A real `cca worker`
and the real `claude` CLI against the scripted Messages API."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from cca_api import create_app
from cca_worker.agent.reaper import read_stat
from tests.support.fleet import FleetAPI
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


def left_behind(home: Path) -> subprocess.Popen[bytes]:
    """A shell and its background child, both with ``home`` as HOME, as a dead run's are."""
    return subprocess.Popen(["bash", "-c", "sleep 600 & wait"], start_new_session=True,
                            env={"PATH": os.environ["PATH"], "HOME": str(home)})


def test_a_slot_kills_what_a_dead_run_of_it_left_as_it_starts(make_settings, start_worker, tmp_path):
    slots = tmp_path / "data" / "slots"
    stale = left_behind(slots / "w1@test-0")
    others = [left_behind(slots / "w1@test-01"), left_behind(slots / "w1@test-1")]
    try:
        start_worker("w1", daemon={"max_agents": 1})
        wait_for(lambda: stale.poll() is not None, timeout_s=10, message="the stale run's shell to die")
        assert not _children_alive(stale.pid)
        # Logged just after the kill, which can be read first.
        wait_for(lambda: "killed 1 process trees" in (tmp_path / "w1.log").read_text(), timeout_s=10,
                 message="the kill to be logged")
        api = FleetAPI(create_app(make_settings()).test_client())
        task = api.submit({"text": "done"})
        done = api.wait_terminal(task["id"], timeout_s=60)
        assert (done["status"], done["result"]) == ("succeeded", "done"), done
        assert [other.poll() for other in others] == [None, None]  # not this slot's
    finally:
        for proc in (stale, *others):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _children_alive(pid: int) -> bool:
    """Whether a process of the session ``pid`` led still runs (its background sleep); a
    zombie waiting for whoever inherited it does not."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := read_stat(int(entry.name))) is not None:
            try:
                if os.getsid(int(entry.name)) == pid and stat[0] != "Z":
                    return True
            except OSError:
                continue
    return False

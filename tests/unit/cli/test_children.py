"""cca up's children are restarted when they die, with a backoff while they keep dying young."""

from __future__ import annotations

from pathlib import Path

from cca_cli.children import FIRST_BACKOFF_S, HEALTHY_AFTER_S, ChildProcesses
from tests.support.procs import processes_running
from tests.support.waiting import wait_for


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def exited(children: ChildProcesses) -> bool:
    return all(child.process and child.process.poll() is not None for child in children.children)


def test_a_child_that_dies_is_started_again_after_a_doubling_backoff():
    clock, said = Clock(), []
    children = ChildProcesses(command=["sh", "-c"], clock=clock)
    children.spawn("crashy", ["exit 3"], {"PATH": "/usr/bin:/bin"})
    child = children.children[0]
    first = child.process
    for backoff in (FIRST_BACKOFF_S, 2 * FIRST_BACKOFF_S, 4 * FIRST_BACKOFF_S):
        wait_for(lambda: exited(children), timeout_s=10, message="the child to exit")
        children.restart_exited(said.append)
        assert child.backoff_s == backoff and child.process.poll() is not None
        clock.now += backoff
        children.restart_exited(said.append)
        assert child.process.poll() is None or child.process.returncode == 3
    assert child.restarts == 3 and child.process is not first
    assert "crashy exited with code 3" in said[0] and "restarting it in 1s" in said[0]


def test_a_child_that_ran_long_before_dying_restarts_at_once():
    clock = Clock()
    children = ChildProcesses(command=["sh", "-c"], clock=clock)
    children.spawn("steady", ["exit 0"], {"PATH": "/usr/bin:/bin"})
    wait_for(lambda: exited(children), timeout_s=10, message="the child to exit")
    clock.now += HEALTHY_AFTER_S
    children.restart_exited(lambda message: None)
    assert children.children[0].restarts == 1 and children.children[0].backoff_s == 0


def test_stop_ends_every_child_and_its_session():
    children = ChildProcesses(command=["sh", "-c"])
    children.spawn("sleeper", ["sleep 30 & sleep 30"], {"PATH": "/usr/bin:/bin"})
    process = children.children[0].process
    wait_for(lambda: processes_running("sleep 30"), timeout_s=10, message="the sleeps")
    children.stop()
    assert process.poll() is not None
    wait_for(lambda: not any(line.split(":")[0] in group(process.pid)
                             for line in processes_running("sleep 30")),
             timeout_s=10, message="the whole session to end")


def group(pgid: int) -> set[str]:
    """Pids of the live processes in process group ``pgid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.add(entry.name)
    return found


def test_what_a_dead_child_left_in_its_session_is_killed_before_it_restarts():
    clock = Clock()
    children = ChildProcesses(command=["sh", "-c"], clock=clock)
    children.spawn("leaky", ["sleep 31 & exit 1"], {"PATH": "/usr/bin:/bin"})
    leader = children.children[0].process.pid
    wait_for(lambda: exited(children), timeout_s=10, message="the child to exit")
    assert group(leader)  # its background sleep lives on in its session
    children.restart_exited(lambda message: None)
    wait_for(lambda: not group(leader), timeout_s=10, message="the old session to be killed")
    children.stop()

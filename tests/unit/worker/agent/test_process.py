from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import pytest

from cca_worker.agent import EOF, AgentProcess, reaper, shim, spawn

FIXTURES = Path(__file__).parent / "fixtures"
FAKE_CLAUDE = str(FIXTURES / "fake_claude.py")
MIDDLE = str(FIXTURES / "middle.py")
REPO = Path(__file__).resolve().parents[4]

Start = Callable[..., AgentProcess]


@pytest.fixture
def pids() -> Iterator[list[int]]:
    """Pids a test saw; any still alive at teardown are SIGKILLed so no test leaks them."""
    seen: list[int] = []
    yield seen
    for pid in seen:
        if not is_gone(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def start(pids: list[int]) -> Iterator[Start]:
    """Spawn fake_claude.py with the given arguments; stop and wait for it at teardown."""
    started: list[AgentProcess] = []

    def start_(*args: str, grace_s: float = 5.0) -> AgentProcess:
        agent = spawn(
            [sys.executable, FAKE_CLAUDE, *args],
            env=dict(os.environ),
            cwd=str(FIXTURES),
            grace_s=grace_s,
        )
        started.append(agent)
        return agent

    yield start_
    for agent in started:
        agent.stop()
        agent.wait()


def children_of(parent: int) -> list[int]:
    return [pid for pid, (ppid, _) in reaper.process_table().items() if ppid == parent]


def is_gone(pid: int) -> bool:
    stat = reaper.read_stat(pid)
    return stat is None or stat[0] == "Z"


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def next_line(agent: AgentProcess, timeout_s: float = 10.0) -> str:
    line = agent.read_line(timeout_s)
    assert isinstance(line, str), f"no line within {timeout_s}s: {line!r}"
    return line


def read_until_eof(agent: AgentProcess, timeout_s: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    lines: list[str] = []
    while (line := agent.read_line(0.1)) is not EOF:
        assert time.monotonic() < deadline, "stdout did not close"
        if line is not None:
            lines.append(line)
    return lines


def read_json_from(stream: IO[bytes], timeout_s: float = 10.0) -> Any:
    assert select.select([stream], [], [], timeout_s)[0], "no line from the middle process"
    return json.loads(stream.readline())


def test_lines_arrive_whole_and_in_order_then_eof_and_exit_code(start: Start) -> None:
    agent = start("lines", "500", "7", str(2 * 1024 * 1024))

    lines = read_until_eof(agent)

    assert lines[:500] == [f"line-{i}" for i in range(500)]
    assert lines[500] == "x" * (2 * 1024 * 1024)
    assert len(lines) == 501
    assert agent.read_line(0.0) is EOF
    status = agent.wait()
    assert (status.returncode, status.stopped) == (7, False)
    assert agent.stderr_tail == "err-500\n"


def run_shell(script: str) -> AgentProcess:
    return spawn(["bash", "-c", script], env=dict(os.environ), cwd=str(FIXTURES))


def test_an_agent_filling_stderr_while_stdout_is_quiet_is_not_blocked() -> None:
    with run_shell("head -c 1048576 /dev/zero | tr '\\0' e >&2; echo done; printf end >&2") \
            as agent:
        assert read_until_eof(agent) == ["done"]
        assert agent.wait().returncode == 0
        assert agent.stderr_tail == "e" * 4093 + "end"


def test_wait_reads_both_pipes_so_an_agent_filling_them_still_ends() -> None:
    # Unread, each pipe fills after 64 KiB and the agent would never exit.
    with run_shell("head -c 1048576 /dev/zero | tr '\\0' e >&2; seq 100000; printf last >&2") \
            as agent:
        status = agent.wait(timeout_s=10)
        assert (status.returncode, status.stopped) == (0, False)
        assert agent.stderr_tail.endswith("elast")
        assert read_until_eof(agent) == [str(i) for i in range(1, 100001)]


def test_read_line_returns_none_after_its_timeout(start: Start) -> None:
    agent = start("sleep")
    assert next_line(agent) == "ready"

    began = time.monotonic()
    assert agent.read_line(0.2) is None
    assert 0.19 <= time.monotonic() - began < 0.5


def test_stop_ends_an_agent_that_honours_sigterm_well_within_grace(start: Start) -> None:
    agent = start("sleep", grace_s=5.0)
    assert next_line(agent) == "ready"

    began = time.monotonic()
    agent.stop()
    agent.stop()
    status = agent.wait()

    assert time.monotonic() - began < 1.0
    assert (status.returncode, status.stopped) == (128 + signal.SIGTERM, True)


def test_stop_kills_an_agent_that_ignores_sigterm_after_grace(start: Start) -> None:
    agent = start("ignore-term", grace_s=1.0)
    assert next_line(agent) == "ready"

    began = time.monotonic()
    agent.stop()
    status = agent.wait()

    assert 0.95 <= time.monotonic() - began < 2.0
    assert (status.returncode, status.stopped) == (128 + signal.SIGKILL, True)


def test_stop_right_after_spawn_still_ends_it(start: Start) -> None:
    agent = start("sleep")
    agent.stop()

    status = agent.wait(timeout_s=5.0)

    assert (status.returncode, status.stopped) == (128 + signal.SIGTERM, True)


def test_stop_after_exit_does_not_count_as_stopped(start: Start) -> None:
    agent = start("lines", "1", "0")
    read_until_eof(agent)
    assert wait_until(lambda: children_of(agent.pid) == [])  # the agent is reaped

    agent.stop()

    assert agent.wait().stopped is False


def test_stop_leaves_no_setsid_grandchild_alive(start: Start, pids: list[int]) -> None:
    agent = start("tree", "sleep")
    tree = json.loads(next_line(agent))
    pids += [tree["pid"], *tree["grandchildren"]]
    assert not any(is_gone(pid) for pid in tree["grandchildren"])

    agent.stop()
    status = agent.wait()

    assert status.stopped
    assert [pid for pid in [tree["pid"], *tree["grandchildren"]] if not is_gone(pid)] == []


def test_normal_exit_kills_setsid_grandchildren_left_behind(start: Start, pids: list[int]) -> None:
    agent = start("tree", "exit")
    tree = json.loads(next_line(agent))
    pids += tree["grandchildren"]

    assert read_until_eof(agent) == []
    status = agent.wait()

    assert (status.returncode, status.stopped) == (3, False)
    assert [pid for pid in tree["grandchildren"] if not is_gone(pid)] == []


def test_death_of_the_spawning_process_ends_the_whole_tree(pids: list[int]) -> None:
    middle = subprocess.Popen(
        [sys.executable, MIDDLE, FAKE_CLAUDE],
        stdout=subprocess.PIPE,
        cwd=str(FIXTURES),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    pids.append(middle.pid)
    assert middle.stdout is not None
    with middle.stdout:
        shim = read_json_from(middle.stdout)["shim"]
        tree = read_json_from(middle.stdout)
    everything = [shim, tree["pid"], *tree["grandchildren"]]
    pids += everything

    middle.kill()
    middle.wait()

    assert wait_until(lambda: all(is_gone(pid) for pid in everything), timeout_s=5.0)


def test_wait_kills_the_whole_tree_when_the_shim_hangs(start: Start, pids: list[int]) -> None:
    agent = start("tree", "sleep")
    tree = json.loads(next_line(agent))
    pids += [tree["pid"], *tree["grandchildren"]]
    os.kill(agent.pid, signal.SIGSTOP)

    status = agent.wait(timeout_s=0.2)

    assert status.returncode == 128 + signal.SIGKILL
    assert wait_until(lambda: all(is_gone(p) for p in [tree["pid"], *tree["grandchildren"]]))


def test_a_shim_killed_before_its_agent_leaves_no_process_behind(start: Start,
                                                                 pids: list[int]) -> None:
    agent = start("tree", "sleep")
    tree = json.loads(next_line(agent))
    pids += [tree["pid"], *tree["grandchildren"]]

    os.kill(agent.pid, signal.SIGKILL)

    assert agent.wait().returncode == 128 + signal.SIGKILL
    # Gone: the pool's side killed the tree of the agent its shim had reported.
    assert wait_until(lambda: all(reaper.read_stat(p) is None
                                  for p in [tree["pid"], *tree["grandchildren"]]))


def test_agent_gets_exactly_the_env_and_cwd_passed_and_an_empty_stdin(
    tmp_path: Path,
) -> None:
    env = {"PATH": "/usr/bin:/bin", "CCA_TEST": "a b=c", "EMPTY": ""}

    with spawn([sys.executable, FAKE_CLAUDE, "environ"], env=env, cwd=str(tmp_path)) as agent:
        seen = json.loads(next_line(agent))

    assert seen == {"env": env, "cwd": str(tmp_path), "stdin": "/dev/null", "stdin_data": ""}


def test_the_agent_and_its_shim_run_nice_steps_nicer_than_the_spawning_process(
    tmp_path: Path,
) -> None:
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    with spawn(["sh", "-c", "cut -d' ' -f19 /proc/$$/stat; cut -d' ' -f19 /proc/$PPID/stat"],
               env={"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path), nice=7) as agent:
        assert read_until_eof(agent) == [str(min(19, ours + 7))] * 2  # the agent, its shim
    with pytest.raises(ValueError, match="nice"):
        spawn(["true"], env={"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path), nice=20)


def test_program_is_looked_up_on_the_env_path(tmp_path: Path) -> None:
    env = {"PATH": str(Path(sys.executable).parent)}
    name = Path(sys.executable).name

    with spawn([name, "-c", "print('hi')"], env=env, cwd=str(tmp_path)) as agent:
        assert read_until_eof(agent) == ["hi"]
    assert agent.wait().returncode == 0


def test_spawn_refuses_a_missing_or_non_executable_program(tmp_path: Path) -> None:
    (tmp_path / "script").write_text("#!/bin/sh\n")
    env = {"PATH": str(tmp_path)}

    with pytest.raises(FileNotFoundError):
        spawn(["cca-no-such-program"], env=env, cwd=str(tmp_path))
    with pytest.raises(PermissionError):
        spawn(["./script"], env=env, cwd=str(tmp_path))
    with pytest.raises(FileNotFoundError):
        spawn([sys.executable], env=env, cwd=str(tmp_path / "missing"))


def test_a_program_the_kernel_cannot_execute_ends_127_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "broken").write_text("#!/no/such/interpreter\n")
    (tmp_path / "broken").chmod(0o755)

    with spawn(["./broken"], env={"PATH": "/bin"}, cwd=str(tmp_path)) as agent:
        assert read_until_eof(agent) == []
        status = agent.wait()

    assert (status.returncode, status.stopped) == (127, False)
    assert "cannot run" in agent.stderr_tail and "broken" in agent.stderr_tail


def test_shim_whose_parent_already_died_starts_nothing(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair()
    output, agent_output = os.pipe()
    code = (f"from cca_worker.agent import shim; "
            f"shim.serve({theirs.fileno()}, parent=1)")
    with ours, theirs:
        done = subprocess.Popen([sys.executable, "-c", code], pass_fds=[theirs.fileno()],
                                stdout=agent_output, stderr=agent_output,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        os.close(agent_output)
        ours.sendall(shim.encode({"argv": [sys.executable, FAKE_CLAUDE, "environ"], "env": {},
                                  "cwd": str(tmp_path), "grace_s": 1.0}))
        assert done.wait(10) == 0
    with open(output, "rb") as ran:
        assert ran.read() == b""  # the request was never taken up


def test_concurrent_spawns_from_many_threads_each_get_their_own_agent(tmp_path: Path) -> None:
    def run(index: int) -> list[str]:
        with spawn([sys.executable, FAKE_CLAUDE, "lines", "3", "0"], env=dict(os.environ),
                   cwd=str(tmp_path), grace_s=1.0) as agent:
            return [f"{index}:{line}" for line in read_until_eof(agent)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        outputs = list(pool.map(run, range(16)))

    assert outputs == [[f"{i}:line-{n}" for n in range(3)] for i in range(16)]


def test_each_agent_gets_a_shim_of_its_own_which_exits_with_it(start: Start) -> None:
    first = start("lines", "1", "0")
    second = start("lines", "1", "0")
    assert first.pid != second.pid
    for agent in (first, second):
        assert read_until_eof(agent) == ["line-0"]
        assert agent.wait().returncode == 0
        assert reaper.read_stat(agent.pid) is None  # exited and reaped


def test_a_shim_stopped_by_a_signal_ends_its_run(start: Start) -> None:
    agent = start("sleep")
    assert next_line(agent) == "ready"

    os.kill(agent.pid, signal.SIGTERM)

    status = agent.wait()
    assert (status.returncode, status.stopped) == (128 + signal.SIGTERM, False)

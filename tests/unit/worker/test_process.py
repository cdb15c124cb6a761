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

from cca_worker import forkclient, reaper, wire
from cca_worker.process import EOF, AgentProcess, spawn

FIXTURES = Path(__file__).parent / "fixtures"
FAKE_CLAUDE = str(FIXTURES / "fake_claude.py")
MIDDLE = str(FIXTURES / "middle.py")
REPO = Path(__file__).resolve().parents[3]

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
    # Gone, not zombies of the fork server, which adopted them: it reaped them too.
    assert wait_until(lambda: all(reaper.read_stat(p) is None
                                  for p in [tree["pid"], *tree["grandchildren"]]))


def test_agent_gets_exactly_the_env_and_cwd_passed_and_an_empty_stdin(
    tmp_path: Path,
) -> None:
    env = {"PATH": "/usr/bin:/bin", "CCA_TEST": "a b=c", "EMPTY": ""}

    with spawn([sys.executable, FAKE_CLAUDE, "environ"], env=env, cwd=str(tmp_path)) as agent:
        seen = json.loads(next_line(agent))

    assert seen == {"env": env, "cwd": str(tmp_path), "stdin": "/dev/null", "stdin_data": ""}


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
    code = (f"import socket; from cca_worker import shim; "
            f"shim.serve(socket.socket(fileno={theirs.fileno()}), parent=1)")
    with ours, theirs:
        done = subprocess.Popen([sys.executable, "-c", code], pass_fds=[theirs.fileno()],
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        wire.send(ours, {"argv": [sys.executable, FAKE_CLAUDE, "environ"], "env": {},
                         "cwd": str(tmp_path), "grace_s": 1.0},
                  [agent_output, agent_output, agent_output])
        os.close(agent_output)
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


def test_a_request_that_fits_one_sendmsg_is_written_by_it_alone() -> None:
    # A shim that got its whole request may close the socket at once (its server died, say);
    # any further write on it (even of nothing) would then fail the spawn with EPIPE.
    class Recorder:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def sendmsg(self, buffers: list[bytes], ancillary: Any) -> int:
            self.calls.append("sendmsg")
            return sum(len(buffer) for buffer in buffers)

        def sendall(self, data: bytes) -> None:
            self.calls.append(f"sendall {len(data)}")

    recorder = Recorder()

    wire.send(recorder, {"argv": ["x"]}, [0, 1, 2])  # type: ignore[arg-type]

    assert recorder.calls == ["sendmsg"]


def test_death_of_the_fork_server_stops_its_agents_and_the_next_spawn_starts_a_new_one(
    start: Start, pids: list[int],
) -> None:
    agent = start("tree", "sleep")
    tree = json.loads(next_line(agent))
    pids += [tree["pid"], *tree["grandchildren"]]
    server = reaper.read_stat(agent.pid)
    assert server is not None

    os.kill(server[1], signal.SIGKILL)

    status = agent.wait()  # the shim got SIGTERM from the kernel and stopped the agent
    assert (status.returncode, status.stopped) == (128 + signal.SIGTERM, False)
    assert wait_until(lambda: all(is_gone(p) for p in [tree["pid"], *tree["grandchildren"]]))
    again = start("lines", "1", "0")
    assert read_until_eof(again) == ["line-0"]
    assert again.wait().returncode == 0



def children_of(parent: int) -> list[int]:
    return [pid for pid, (ppid, _) in reaper.process_table().items() if ppid == parent]


def test_agents_in_turn_run_on_the_same_shim_each_with_its_own_env_and_cwd(
    start: Start, tmp_path: Path,
) -> None:
    first = start("lines", "1", "0")
    assert read_until_eof(first) == ["line-0"]
    assert first.wait().returncode == 0
    env = {"PATH": "/usr/bin:/bin", "ONLY_THIS": "1"}

    with spawn([sys.executable, FAKE_CLAUDE, "environ"], env=env, cwd=str(tmp_path)) as again:
        seen = json.loads(next_line(again))

    assert again.pid == first.pid  # no fork for the second agent
    assert seen == {"env": env, "cwd": str(tmp_path), "stdin": "/dev/null", "stdin_data": ""}


def test_a_stop_for_an_ended_run_does_not_reach_the_next_one(start: Start) -> None:
    first = start("lines", "1", "0")
    read_until_eof(first)
    assert wait_until(lambda: children_of(first.pid) == [])
    first.stop()  # reaches the shim after its run ended
    assert first.wait().stopped is False

    second = start("sleep")
    assert second.pid == first.pid
    assert next_line(second) == "ready"
    assert second.read_line(0.5) is None  # still running: the old stop was ignored
    second.stop()
    assert second.wait().stopped is True


def test_a_shim_killed_while_idle_is_replaced_for_the_next_spawn(start: Start) -> None:
    first = start("lines", "1", "0")
    assert read_until_eof(first) == ["line-0"]
    first.wait()

    os.kill(first.pid, signal.SIGKILL)
    assert wait_until(lambda: reaper.read_stat(first.pid) is None)  # reaped by the server

    again = start("lines", "1", "0")
    assert again.pid != first.pid
    assert read_until_eof(again) == ["line-0"]
    assert again.wait().returncode == 0


def test_a_shim_stopped_by_a_signal_ends_its_run_and_is_not_reused(start: Start) -> None:
    agent = start("sleep")
    assert next_line(agent) == "ready"

    os.kill(agent.pid, signal.SIGTERM)

    status = agent.wait()
    assert (status.returncode, status.stopped) == (128 + signal.SIGTERM, False)
    again = start("lines", "1", "0")  # at once: never sent to the shim that is exiting
    assert again.pid != agent.pid
    assert read_until_eof(again) == ["line-0"]
    assert again.wait().returncode == 0


def test_a_spawn_just_after_the_fork_server_died_gets_a_new_server(start: Start) -> None:
    earlier = [start("sleep") for _ in range(3)]
    for one in earlier:
        assert next_line(one) == "ready"
        one.stop()
        one.wait()  # three idle shims now, which die with their server
    server = forkclient.fork_server()
    # Holding its lock keeps the server's reader thread from taking in the server's end, as
    # when a spawn comes first; this thread may still take the lock again.
    with server._changed:
        os.kill(server._proc.pid, signal.SIGKILL)
        assert wait_until(lambda: is_gone(server._proc.pid))
        again = start("lines", "1", "0")

    assert again.pid not in [one.pid for one in earlier]
    assert read_until_eof(again) == ["line-0"]
    assert again.wait().returncode == 0

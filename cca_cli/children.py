"""The child processes of ``cca up``, kept up as a process supervisor would: a child that dies
(a SIGKILL, an out-of-memory kill, a crash) is started again after a backoff that doubles while
it keeps dying young, and everything stops only when ``cca up`` is told to stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

STOP_TIMEOUT_S = 15
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
HEALTHY_AFTER_S = 60.0  # a child that ran this long before dying restarts at once


@dataclass
class Child:
    """One ``cca`` subcommand run as a process of its own session."""

    name: str
    args: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff_s: float = 0.0
    restart_at: float | None = None
    restarts: int = 0


CCA = (sys.executable, "-m", "cca_cli.main")


class ChildProcesses:
    """Start, restart and stop the fleet's processes: each is ``command`` + its args.
    ``command`` and ``clock`` are for tests."""

    def __init__(self, command: Sequence[str] = CCA,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.children: list[Child] = []
        self._command = list(command)
        self._clock = clock

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        child = Child(name, args, env)
        self._start(child)
        self.children.append(child)

    def restart_exited(self, echo: Callable[[str], None]) -> None:
        """Schedule a restart for each child that exited, and start those whose backoff
        ran out; ``echo`` reports each to the user."""
        now = self._clock()
        for child in self.children:
            if child.restart_at is None and child.process and child.process.poll() is not None:
                _kill_session(child.process.pid)
                lived = now - child.started_at
                child.backoff_s = (0.0 if lived >= HEALTHY_AFTER_S else
                                   min(MAX_BACKOFF_S, max(FIRST_BACKOFF_S, 2 * child.backoff_s)))
                child.restart_at = now + child.backoff_s
                echo(f"cca: {child.name} exited with code {child.process.returncode} after "
                     f"{lived:.0f}s; restarting it in {child.backoff_s:.0f}s")
            if child.restart_at is not None and now >= child.restart_at:
                child.restart_at = None
                child.restarts += 1
                self._start(child)

    def stop(self) -> None:
        """SIGTERM every child's session, SIGKILL what is left after STOP_TIMEOUT_S."""
        running = [child.process for child in self.children
                   if child.process and child.process.poll() is None]
        for process in running:
            os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def _start(self, child: Child) -> None:
        child.process = subprocess.Popen([*self._command, *child.args],
                                         env=child.env, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        child.started_at = self._clock()


def _kill_session(leader: int) -> None:
    """SIGKILL what a dead child left in its session (a killed Celery worker's pool
    processes, say): its tasks are the lease sweep's to re-run, not orphans'."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader, signal.SIGKILL)

"""Spawn and stop agent processes so that none outlives its task (Linux only).

The only module that starts ``claude``. Each agent runs under a reaper shim, one of the
pool process's shims that its fork server forked (``forkserver.py``, ``shim.py``), in a
session of its own, with stdin on /dev/null::

    pool process ══ fork server ── shim (subreaper) ── claude ── tools…

The shim turns a stop request, or the death of the pool process (which ends the fork
server), into SIGTERM → grace → SIGKILL of the agent, then kills every descendant left
behind, including the ``setsid`` shells of claude's Bash tool. If the shim itself hangs,
:meth:`AgentProcess.wait` kills the whole tree it can still find.
"""

from __future__ import annotations

import collections
import enum
import errno
import math
import os
import select
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from cca_worker import reaper
from cca_worker.forkclient import ShimExit, ShimRun, spawn_on_shim
from cca_worker.reaper import set_parent_death_signal

__all__ = [
    "EOF",
    "AgentProcess",
    "ExitStatus",
    "set_parent_death_signal",
    "spawn",
]

STDERR_TAIL_BYTES = 4096
_WAIT_MARGIN_S = 5.0
_KILL_WAIT_S = 5.0  # after killing a hung shim's tree, for its exit to be reported
_READ_BYTES = 1 << 16
_DRAIN_READS = 64  # after the end: what is left in the pipes, at most 64 reads (4 MiB)


class _Eof(enum.Enum):
    EOF = "EOF"


EOF = _Eof.EOF
"""Returned by :meth:`AgentProcess.read_line` once stdout is closed and fully read."""


@dataclass(frozen=True)
class ExitStatus:
    """How an agent process ended.

    ``returncode`` is the agent's exit code, or 128+N if signal N killed it (so SIGTERM
    gives 143 whether claude exited on it or died of it, SIGKILL 137); 127 if it could not
    be started; and 137 stands for unknown if the shim itself died (or was killed as the
    last resort of ``wait``). ``stopped`` is True if a :meth:`AgentProcess.stop` request
    reached the shim while the agent still ran. ``duration_s`` runs from :func:`spawn` until
    stdout closed, which is just before the shim reports the end.
    """

    returncode: int
    stopped: bool
    duration_s: float


class AgentProcess:
    """A running agent: its stdout as lines, its stderr tail, and a way to stop it.

    Reads both pipes in the calling thread (``poll``; reader threads cost 20 times the CPU
    on a short run), so stdout and stderr are drained only inside :meth:`read_line` and
    :meth:`wait`, which together run until the agent ended. Use from one thread, except
    :meth:`stop`, which may be called from any thread. As a context manager it stops and
    waits on exit.
    """

    def __init__(self, run: ShimRun, stdout: int, stderr: int, grace_s: float) -> None:
        self._run = run
        self._grace_s = grace_s
        self._started = time.monotonic()
        self._stdout = stdout
        self._stderr = stderr
        self._open = {stdout, stderr}
        self._poll = select.poll()
        for fd in self._open:
            self._poll.register(fd, select.POLLIN)
        self._lines: collections.deque[str] = collections.deque()
        self._partial = bytearray()
        self._stdout_closed_at: float | None = None
        self._status: ExitStatus | None = None
        self._tail = bytearray()

    @property
    def pid(self) -> int:
        """The pid of the reaper shim (the agent is its one child while it runs)."""
        return self._run.pid

    @property
    def stderr_tail(self) -> str:
        """The last ``STDERR_TAIL_BYTES`` of stderr read so far, decoded leniently."""
        return self._tail.decode("utf-8", errors="replace")

    def read_line(self, timeout_s: float) -> str | None | _Eof:
        """Return the next stdout line without its newline, None if none arrived within
        ``timeout_s``, or :data:`EOF` once stdout is closed and every line was returned.
        """
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while not self._lines:
            if self._stdout not in self._open:
                return EOF
            if not self._pump(deadline - time.monotonic()):
                return None
        return self._lines.popleft()

    def stop(self) -> None:
        """Ask the agent to stop (SIGTERM, then SIGKILL after the grace period); return at
        once. Idempotent, and a no-op once the agent has ended."""
        self._run.stop()

    def wait(self, timeout_s: float | None = None) -> ExitStatus:
        """Wait for the shim to report the agent's end and return how it ended; idempotent.
        Output that arrives meanwhile is still read (stdout lines stay for :meth:`read_line`).

        If no report came after ``timeout_s`` (default: grace + 5 s), the shim and every
        descendant still found are SIGKILLed. Raises subprocess.TimeoutExpired only if even
        that does not end the shim within 5 s.
        """
        if self._status is not None:
            return self._status
        limit = self._grace_s + _WAIT_MARGIN_S if timeout_s is None else timeout_s
        end = self._wait_for_shim(limit)
        if end is None:
            reaper.kill_tree(self._run.pid)
            end = self._wait_for_shim(_KILL_WAIT_S)
        if end is None:
            raise subprocess.TimeoutExpired(f"reaper shim {self._run.pid}", limit + _KILL_WAIT_S)
        for _ in range(_DRAIN_READS):  # what the agent wrote just before it ended
            if not (self._open and self._pump(0.0)):
                break
        for fd in list(self._open):
            self._close(fd)
        # The shim reports just after stdout closed; wait() may be called much later.
        duration_s = (self._stdout_closed_at or time.monotonic()) - self._started
        self._status = ExitStatus(end.returncode, end.stopped, duration_s)
        return self._status

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self.wait()

    def _wait_for_shim(self, timeout_s: float) -> ShimExit | None:
        """The shim's report, reading the pipes meanwhile (an agent blocked on a full pipe
        would never end); None after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        shim = self._run.fileno()
        self._poll.register(shim, select.POLLIN)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if shim in self._pump(remaining) or remaining <= 0:
                    return self._run.wait(0.0)
        finally:
            self._poll.unregister(shim)

    def _pump(self, timeout_s: float) -> set[int]:
        """Read what the pipes have within ``timeout_s``; the fds that were ready (none if
        nothing came)."""
        ready = {fd for fd, _ in self._poll.poll(_poll_ms(timeout_s))}
        for fd in ready & self._open:
            self._read(fd)
        return ready

    def _read(self, fd: int) -> None:
        chunk = os.read(fd, _READ_BYTES)
        if not chunk:
            if fd == self._stdout:
                self._stdout_closed_at = time.monotonic()
                if self._partial:
                    self._lines.append(self._partial.decode("utf-8", errors="replace"))
            self._close(fd)
        elif fd == self._stdout:
            *complete, rest = chunk.split(b"\n")
            if complete:
                complete[0] = bytes(self._partial) + complete[0]
                self._partial = bytearray(rest)
                self._lines.extend(line.decode("utf-8", errors="replace") for line in complete)
            else:
                self._partial += rest
        else:
            self._tail += chunk
            del self._tail[:-STDERR_TAIL_BYTES]

    def _close(self, fd: int) -> None:
        self._poll.unregister(fd)
        self._open.discard(fd)
        os.close(fd)


def _poll_ms(timeout_s: float) -> int:
    """``timeout_s`` for poll(), rounded up so that a short wait does not spin."""
    return max(0, math.ceil(timeout_s * 1000))


def spawn(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: str, grace_s: float = 5.0
) -> AgentProcess:
    """Start ``argv`` under a reaper shim with exactly ``env`` and ``cwd``.

    ``argv[0]`` is looked up on ``env["PATH"]`` (or taken relative to ``cwd`` if it holds
    a slash). Thread-safe.

    Raises ValueError if argv is empty or grace_s negative, FileNotFoundError if the
    program or ``cwd`` does not exist, PermissionError if the program is not executable,
    and OSError if the shim cannot be started.
    """
    if not argv:
        raise ValueError("argv is empty")
    if grace_s < 0:
        raise ValueError(f"grace_s must be >= 0, got {grace_s}")
    program = _resolve(argv[0], env, cwd)
    if not os.path.isdir(cwd):
        raise FileNotFoundError(errno.ENOENT, "no such directory", cwd)
    stdout_r, stdout_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        run = spawn_on_shim([program, *argv[1:]], env, cwd, float(grace_s),
                            (stdin, stdout_w, stderr_w))
    except BaseException:
        os.close(stdout_r)
        os.close(stderr_r)
        raise
    finally:
        for fd in (stdin, stdout_w, stderr_w):
            os.close(fd)
    return AgentProcess(run, stdout_r, stderr_r, grace_s)


def _resolve(program: str, env: Mapping[str, str], cwd: str) -> str:
    if os.sep in program:
        path = os.path.join(cwd, program)
    else:
        found = shutil.which(program, path=env.get("PATH", os.defpath))
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "no executable on PATH", program)
        path = found
    if not os.path.isfile(path):
        raise FileNotFoundError(errno.ENOENT, "no such program", path)
    if not os.access(path, os.X_OK):
        raise PermissionError(errno.EACCES, "program is not executable", path)
    return os.path.abspath(path)

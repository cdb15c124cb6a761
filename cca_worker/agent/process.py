"""Spawn and stop agent processes so that none outlives its task (Linux only): the pool
process's side of the reaper shim (``shim.py``). See the package's docstring for the tree.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import errno
import math
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cca_worker.agent import reaper, shim

STDERR_TAIL_BYTES = 4096
_WAIT_MARGIN_S = 5.0
# The shim runs on the standard library alone: isolated (-I), without site-packages (-S).
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); from cca_worker.agent.shim import main; "
         "main()")
_ROOT = str(Path(__file__).resolve().parents[2])
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

    def __init__(self, run: _ShimRun, stdout: int, stderr: int, grace_s: float) -> None:
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
        self._status = ExitStatus(*end, duration_s)
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

    def _wait_for_shim(self, timeout_s: float) -> tuple[int, bool] | None:
        """The shim's report, reading the pipes meanwhile (an agent blocked on a full pipe
        would never end); None after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        shim = self._run.fileno()
        self._poll.register(shim, select.POLLIN)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if shim in self._pump(remaining) or remaining <= 0:
                    end = self._run.wait(0.0)  # None after a line that was not the report
                    if end is not None or remaining <= 0:
                        return end
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
    argv: Sequence[str], *, env: Mapping[str, str], cwd: str, grace_s: float = 5.0, nice: int = 0
) -> AgentProcess:
    """Start ``argv`` under a reaper shim with exactly ``env`` and ``cwd``, the shim and its
    agent ``nice`` steps nicer than this process.

    ``argv[0]`` is looked up on ``env["PATH"]`` (or taken relative to ``cwd`` if it holds
    a slash). Thread-safe.

    Raises ValueError if argv is empty, grace_s negative or nice outside 0-19,
    FileNotFoundError if the program or ``cwd`` does not exist, PermissionError if the
    program is not executable, and OSError if the shim cannot be started.
    """
    if not argv:
        raise ValueError("argv is empty")
    if grace_s < 0:
        raise ValueError(f"grace_s must be >= 0, got {grace_s}")
    if not 0 <= nice <= 19:
        raise ValueError(f"nice must be 0-19, got {nice}")
    program = _resolve(argv[0], env, cwd)
    if not os.path.isdir(cwd):
        raise FileNotFoundError(errno.ENOENT, "no such directory", cwd)
    stdout_r, stdout_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    try:
        run = _ShimRun.start({"argv": [program, *argv[1:]], "env": dict(env), "cwd": cwd,
                              "grace_s": float(grace_s), "nice": int(nice)}, stdout_w, stderr_w)
    except BaseException:
        os.close(stdout_r)
        os.close(stderr_r)
        raise
    finally:
        os.close(stdout_w)
        os.close(stderr_w)
    return AgentProcess(run, stdout_r, stderr_r, grace_s)


class _ShimRun:
    """One shim running one agent: its stop line, its report. :meth:`wait` is for one
    thread; :meth:`stop` for any."""

    def __init__(self, shim: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self._shim = shim
        self._sock = sock
        self._lock = threading.Lock()
        self._stop_sent = False
        self._ended: tuple[int, bool] | None = None
        self._agent: int | None = None  # claude's pid, once the shim said it
        self._buffer = bytearray()

    @classmethod
    def start(cls, request: dict[str, object], stdout: int, stderr: int) -> _ShimRun:
        """Start a shim on the agent's stdio and hand it ``request``. Raises OSError."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with theirs:
            started = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _BOOT, _ROOT, str(theirs.fileno()),
                 str(os.getpid())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=stdout,
                stderr=stderr, env={}, cwd="/")
        with contextlib.suppress(OSError):  # the shim is gone: wait() reports it
            ours.sendall(shim.encode(request))
        return cls(started, ours)

    @property
    def pid(self) -> int:
        """The shim's pid."""
        return self._shim.pid

    def fileno(self) -> int:
        """The socket on which the shim reports the end: readable once :meth:`wait` would
        not block."""
        return self._sock.fileno()

    def stop(self) -> None:
        """Ask the shim to stop the agent if it has not ended; return at once. Idempotent."""
        with self._lock:
            if self._stop_sent or self._ended is not None:
                return
            self._stop_sent = True
            with contextlib.suppress(OSError):  # the shim is gone, which wait() reports
                self._sock.sendall(b"stop\n")

    def wait(self, timeout_s: float) -> tuple[int, bool] | None:
        """(exit code, stopped) of the run, or None if it still runs after ``timeout_s``.
        A shim that died without reporting counts as SIGKILLed."""
        if self._ended is not None:
            return self._ended
        deadline = time.monotonic() + timeout_s
        while True:
            if not select.select([self._sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
                return None
            report = self._report()
            if report is None or report[0] != "agent":
                break
            self._agent = int(report[1])
        with self._lock:
            self._ended = ((int(report[1]), report[2] == "1")
                           if report is not None else (128 + signal.SIGKILL, False))
            self._sock.close()
        if report is None and self._agent is not None:  # the shim died: do its work
            reaper.kill_tree(self._agent)
        self._shim.wait()  # it exits right after its report, or has died
        return self._ended

    def _report(self) -> list[str] | None:
        """The shim's next line (``agent PID``, ``end CODE STOPPED``) split in words; None at
        the end of the socket or on nonsense."""
        while b"\n" not in self._buffer:
            try:
                chunk = self._sock.recv(1 << 12)
            except OSError:
                return None
            if not chunk:
                return None
            self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        words = line.decode(errors="replace").split()
        valid = (len(words) == 2 and words[0] == "agent" and words[1].isdigit()) or (
            len(words) == 3 and words[0] == "end" and words[1].isdigit())
        return words if valid else None


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

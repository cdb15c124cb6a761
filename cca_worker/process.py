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

import enum
import errno
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO

from cca_worker import reaper
from cca_worker.forkclient import ShimRun, spawn_on_shim
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
_JOIN_S = 2.0
_STDOUT_BUFFER = 1 << 16


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

    Use from one thread, except :meth:`stop`, which may be called from any thread.
    As a context manager it stops and waits on exit.
    """

    def __init__(self, run: ShimRun, stdout: IO[bytes], stderr: IO[bytes],
                 grace_s: float) -> None:
        self._run = run
        self._grace_s = grace_s
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._eof = False
        self._stdout_closed_at: float | None = None
        self._status: ExitStatus | None = None
        self._lines: queue.SimpleQueue[str | _Eof] = queue.SimpleQueue()
        self._tail = bytearray()
        self._readers = [
            threading.Thread(target=self._pump_lines, args=(stdout,), daemon=True),
            threading.Thread(target=self._pump_tail, args=(stderr,), daemon=True),
        ]
        for thread in self._readers:
            thread.start()

    @property
    def pid(self) -> int:
        """The pid of the reaper shim (the agent is its one child while it runs)."""
        return self._run.pid

    @property
    def stderr_tail(self) -> str:
        """The last ``STDERR_TAIL_BYTES`` of stderr, decoded leniently."""
        with self._lock:
            return self._tail.decode("utf-8", errors="replace")

    def read_line(self, timeout_s: float) -> str | None | _Eof:
        """Return the next stdout line without its newline, None if none arrived within
        ``timeout_s``, or :data:`EOF` once stdout is closed and every line was returned.
        """
        if self._eof:
            return EOF
        try:
            item = self._lines.get(timeout=max(timeout_s, 0.0))
        except queue.Empty:
            return None
        self._eof = item is EOF
        return item

    def stop(self) -> None:
        """Ask the agent to stop (SIGTERM, then SIGKILL after the grace period); return at
        once. Idempotent, and a no-op once the agent has ended."""
        self._run.stop()

    def wait(self, timeout_s: float | None = None) -> ExitStatus:
        """Wait for the shim to report the agent's end and return how it ended; idempotent.

        If no report came after ``timeout_s`` (default: grace + 5 s), the shim and every
        descendant still found are SIGKILLed. Raises subprocess.TimeoutExpired only if even
        that does not end the shim within 5 s.
        """
        if self._status is not None:
            return self._status
        limit = self._grace_s + _WAIT_MARGIN_S if timeout_s is None else timeout_s
        end = self._run.wait(limit)
        if end is None:
            reaper.kill_tree(self._run.pid)
            end = self._run.wait(_KILL_WAIT_S)
        if end is None:
            raise subprocess.TimeoutExpired(f"reaper shim {self._run.pid}", limit + _KILL_WAIT_S)
        for thread in self._readers:
            thread.join(_JOIN_S)
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

    def _pump_lines(self, stream: IO[bytes]) -> None:
        try:
            with stream:
                for raw in stream:
                    self._lines.put(raw.removesuffix(b"\n").decode("utf-8", errors="replace"))
        finally:
            self._stdout_closed_at = time.monotonic()
            self._lines.put(EOF)

    def _pump_tail(self, stream: IO[bytes]) -> None:
        with stream:
            while chunk := os.read(stream.fileno(), 1 << 16):
                with self._lock:
                    self._tail += chunk
                    del self._tail[:-STDERR_TAIL_BYTES]


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
    return AgentProcess(run, open(stdout_r, "rb", buffering=_STDOUT_BUFFER),
                        open(stderr_r, "rb", buffering=0), grace_s)


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

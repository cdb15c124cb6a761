"""The benchmark's child processes: each in its own session, logged to a file, all stopped
when the benchmark ends (also on Ctrl-C)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT_S = 15.0


@dataclass
class Child:
    """One started process (gunicorn, a Celery worker) and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the process (a graceful shutdown), SIGKILL it after ``timeout_s``, then
        SIGKILL whatever is left in its process group. Idempotent."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        # The session was ours alone; pool processes left behind die with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


class Children:
    """Starts children and remembers them, so that :meth:`stop_all` can stop every one."""

    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = logs_dir
        self.started: list[Child] = []

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> Child:
        """Start ``argv`` in a new session (so a terminal's Ctrl-C reaches only the benchmark,
        which then stops it in order), with stdout and stderr in ``logs_dir/name.log``."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log = self.logs_dir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        child = Child(name, popen, log)
        self.started.append(child)
        return child

    def named(self, name: str) -> Child:
        """The child last started under ``name``."""
        return next(child for child in reversed(self.started) if child.name == name)

    def stop_all(self) -> None:
        """Stop every child still running, newest first."""
        for child in reversed(self.started):
            child.stop()

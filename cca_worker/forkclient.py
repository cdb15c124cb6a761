"""The pool process's side of its fork server (``forkserver.py``) and shims (``shim.py``):
start the server on first use, run each agent on an idle shim (asking the server for a new
one only when none is idle), send a run its stop request, and read how it ended."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cca_worker
from cca_worker import wire

log = logging.getLogger(__name__)

_SPAWN_REPLY_S = 30.0
_SPAWN_ATTEMPTS = 3
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from cca_worker.forkserver import serve; " \
        "serve(int(sys.argv[2]))"


class ForkServerGone(OSError):
    """The fork server exited before it offered a shim."""


@dataclass(frozen=True)
class ShimExit:
    """How a run ended: the agent's exit code (128+N if signal N killed it) and whether a
    stop request reached it running. If the shim died first the code is unknown and
    reported as SIGKILL; the fork server, its parent, then killed the agent's tree."""

    returncode: int
    stopped: bool


@dataclass(eq=False)
class _Shim:
    """A child of the fork server that runs agents sent on ``sock``, one at a time."""

    pid: int
    sock: socket.socket


class ShimRun:
    """One agent running on a shim. :meth:`wait` is for one thread; :meth:`stop` for any."""

    def __init__(self, server: ForkServer, shim: _Shim) -> None:
        self._server = server
        self._shim = shim
        self._lock = threading.Lock()
        self._stop_sent = False
        self._ended: ShimExit | None = None

    @property
    def pid(self) -> int:
        """The shim's pid."""
        return self._shim.pid

    def fileno(self) -> int:
        """The socket on which the shim reports the end: readable once :meth:`wait` would
        not block."""
        return self._shim.sock.fileno()

    def stop(self) -> None:
        """Ask the shim to stop this run if it has not ended; return at once. Idempotent."""
        with self._lock:  # never after wait() handed the shim to another run
            if self._stop_sent or self._ended is not None:
                return
            self._stop_sent = True
            with contextlib.suppress(OSError):  # the shim is gone, which wait() reports
                wire.send(self._shim.sock, {"op": "stop"})

    def wait(self, timeout_s: float) -> ShimExit | None:
        """How the run ended, or None if it still runs after ``timeout_s``."""
        if self._ended is not None:
            return self._ended
        ready, _, _ = select.select([self._shim.sock], [], [], timeout_s)
        if not ready:
            return None
        try:
            message, fds = wire.receive(self._shim.sock)
        except (OSError, ValueError):
            message, fds = None, []
        wire.close(fds)
        with self._lock:
            if message is None:
                self._ended = ShimExit(128 + signal.SIGKILL, stopped=False)
                self._server.discard(self._shim)
            else:
                self._ended = ShimExit(int(message["returncode"]), bool(message["stopped"]))
                self._server.release(self._shim)
        return self._ended


class ForkServer:
    """A running fork server and its shims, owned by the process that started it.
    Thread-safe."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        root = str(Path(cca_worker.__file__).resolve().parent.parent)
        with theirs:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _BOOT, root, str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                env={}, cwd="/")
        self._sock = ours
        self._changed = threading.Condition()
        self._idle: list[_Shim] = []
        self._shims: set[_Shim] = set()  # every shim whose socket is open, idle or running
        self.alive = True
        threading.Thread(target=self._read, name="cca-fork-server", daemon=True).start()

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], cwd: str, grace_s: float,
              stdio: tuple[int, int, int]) -> ShimRun:
        """Run ``argv`` (its program already resolved) on a shim. Raises OSError if no shim
        can start it."""
        request = {"argv": list(argv), "env": dict(env), "cwd": cwd, "grace_s": grace_s}
        for _ in range(_SPAWN_ATTEMPTS):
            shim = self._take()
            if _accepts(shim, request, stdio):
                return ShimRun(self, shim)
            self.discard(shim)  # it died, or was told to stop, while idle: try another
        raise OSError(f"{_SPAWN_ATTEMPTS} shims in a row failed to accept a request")

    def release(self, shim: _Shim) -> None:
        """Make ``shim``, whose run has ended, idle again."""
        with self._changed:
            if not self.alive:
                self._close(shim)
                return
            self._idle.append(shim)
            self._changed.notify_all()

    def discard(self, shim: _Shim) -> None:
        """Drop ``shim``, which is gone or cannot be trusted."""
        with self._changed:
            self._close(shim)

    def close(self) -> None:
        """Close this process's ends (for a forked child: the parent still owns the server)."""
        self._sock.close()
        for shim in list(self._shims):
            shim.sock.close()

    def _take(self) -> _Shim:
        """An idle shim, the most recently used first; if none is idle, a new one from the
        server. Raises OSError."""
        with self._changed:
            if self.alive and self._proc.poll() is not None:  # before the reader saw it
                self._lose()
            if not self._idle and self.alive:
                with contextlib.suppress(OSError):  # the server is gone: the reader will say
                    wire.send(self._sock, {"op": "shim"})
            if not self._changed.wait_for(lambda: self._idle or not self.alive, _SPAWN_REPLY_S):
                self._proc.kill()
                raise OSError(f"the fork server offered no shim within {_SPAWN_REPLY_S:g}s")
            if not self._idle:
                raise ForkServerGone("the fork server exited")
            return self._idle.pop()

    def _close(self, shim: _Shim) -> None:
        shim.sock.close()
        self._shims.discard(shim)

    def _read(self) -> None:
        try:
            while True:
                message, fds = wire.receive(self._sock)
                if message is None:
                    break
                if "shim" in message and len(fds) == 1:
                    shim = _Shim(int(message["shim"]), socket.socket(fileno=fds.pop()))
                    with self._changed:
                        self._shims.add(shim)
                        self._idle.append(shim)
                        self._changed.notify_all()
                wire.close(fds)
        except (OSError, ValueError) as exc:
            log.warning("lost the fork server: %s", exc)
        with self._changed:
            self._lose()
        self._sock.close()
        self._proc.wait()

    def _lose(self) -> None:
        """Mark the server gone (under ``_changed``): its idle shims go with it."""
        self.alive = False
        for shim in self._idle:
            self._close(shim)
        self._idle.clear()
        self._changed.notify_all()


def _accepts(shim: _Shim, request: dict[str, Any], stdio: tuple[int, int, int]) -> bool:
    """Send ``request`` to ``shim``; whether the shim accepted it. A shim that leaves without
    accepting has started nothing."""
    try:
        wire.send(shim.sock, request, stdio)
        if not select.select([shim.sock], [], [], _SPAWN_REPLY_S)[0]:
            os.kill(shim.pid, signal.SIGKILL)  # hung: the server reaps it
            return False
        reply, fds = wire.receive(shim.sock)
    except (OSError, ValueError):
        return False
    wire.close(fds)
    return reply is not None and reply.get("accepted") is True


_lock = threading.Lock()
_server: ForkServer | None = None
_fork_hook = False


def spawn_on_shim(argv: Sequence[str], env: Mapping[str, str], cwd: str, grace_s: float,
                  stdio: tuple[int, int, int]) -> ShimRun:
    """Run ``argv`` on a shim of this process's fork server (see :meth:`ForkServer.spawn`);
    if that server turns out to have died, start a new one and try once more. Raises
    OSError."""
    try:
        return fork_server().spawn(argv, env, cwd, grace_s, stdio)
    except ForkServerGone:  # a server that died since the last spawn is only noticed now
        return fork_server().spawn(argv, env, cwd, grace_s, stdio)


def fork_server() -> ForkServer:
    """This process's fork server, started (again) if it is not running."""
    global _server, _fork_hook
    with _lock:
        if not _fork_hook:
            os.register_at_fork(after_in_child=_forget_in_child)
            _fork_hook = True
        if _server is None or not _server.alive:
            _server = ForkServer()
        return _server


def _forget_in_child() -> None:
    # A forked child must not keep the parent's sockets open, or the server and the shims
    # would outlive the parent; it starts its own server when it first spawns. Another
    # thread of the parent may have held the lock at the fork.
    global _server, _lock
    _lock = threading.Lock()
    if _server is not None:
        _server.close()
        _server = None

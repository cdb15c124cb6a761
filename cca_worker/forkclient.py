"""The pool process's side of its fork server (``forkserver.py``): start it on first use,
hand each spawn request to the standby it offers, send it stop requests, and collect the
exit status of each shim."""

from __future__ import annotations

import logging
import os
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
from cca_worker import forkserver

log = logging.getLogger(__name__)

_SPAWN_REPLY_S = 30.0
# After a spawn, the next standby is forked this much later, not while the agent starts.
_STANDBY_AFTER_S = 0.02
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from cca_worker.forkserver import serve; " \
        "serve(int(sys.argv[2]))"


@dataclass(frozen=True)
class ShimExit:
    """How a shim ended: its wait status, and whether a stop request reached it running.
    If the fork server died first the status is unknown and reported as SIGKILL; the shim
    got SIGTERM from the kernel and stopped its agent."""

    status: int
    stopped: bool


class ForkServer:
    """A running fork server, owned by the process that started it. Thread-safe."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        root = str(Path(cca_worker.__file__).resolve().parent.parent)
        with theirs:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _BOOT, root, str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                env={}, cwd="/")
        self._sock = ours
        self._send_lock = threading.Lock()
        self._spawn_lock = threading.Lock()
        self._changed = threading.Condition()
        self._standby: _Standby | None = None
        self._exits: dict[int, ShimExit] = {}
        self._running: set[int] = set()
        self.alive = True
        threading.Thread(target=self._read, name="cca-fork-server", daemon=True).start()

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], cwd: str, grace_s: float,
              stdio: tuple[int, int, int]) -> int:
        """Start a shim running ``argv`` (its program already resolved); return its pid.
        Raises OSError if the server cannot start it."""
        request = {"argv": list(argv), "env": dict(env), "cwd": cwd, "grace_s": grace_s}
        with self._spawn_lock:
            standby = self._take_standby()
            try:
                with standby.sock:
                    forkserver.send(standby.sock, request, stdio)
            except OSError as exc:
                with self._changed:
                    self._running.discard(standby.pid)
                raise OSError(f"cannot start the shim: {exc}") from exc
            finally:
                self._send({"op": "standby", "used": standby.pid, "after_s": _STANDBY_AFTER_S})
        return standby.pid

    def stop(self, pid: int) -> None:
        """Ask for SIGTERM to the shim ``pid`` if it still runs; return at once."""
        self._send({"op": "stop", "pid": pid})

    def wait(self, pid: int, timeout_s: float) -> ShimExit | None:
        """How the shim ``pid`` ended, or None if it is still running after ``timeout_s``."""
        with self._changed:
            self._changed.wait_for(lambda: pid in self._exits or pid not in self._running,
                                   timeout_s)
            if pid in self._exits:
                return self._exits.pop(pid)
            if pid not in self._running:
                return ShimExit(signal.SIGKILL, stopped=False)
            return None

    def close(self) -> None:
        """Close this process's ends (for a forked child: the parent still owns the server)."""
        self._sock.close()
        if self._standby is not None:
            self._standby.sock.close()

    def _take_standby(self) -> _Standby:
        """The standby the server offered (asking for one if none is held), now counted as
        a running shim. Raises OSError."""
        with self._changed:
            if self._standby is None:
                self._send({"op": "standby", "used": None, "after_s": 0})
            if not self._changed.wait_for(lambda: self._standby or not self.alive,
                                          _SPAWN_REPLY_S):
                self._proc.kill()
                raise OSError(f"the fork server offered no standby within {_SPAWN_REPLY_S:g}s")
            if self._standby is None:
                raise OSError("the fork server exited")
            standby, self._standby = self._standby, None
            self._running.add(standby.pid)
            return standby

    def _send(self, message: dict[str, Any]) -> None:
        try:
            with self._send_lock:
                forkserver.send(self._sock, message)
        except OSError:
            pass  # the server is gone: its shims got SIGTERM, and the next spawn sees it

    def _read(self) -> None:
        try:
            while True:
                message, fds = forkserver.receive(self._sock)
                if message is None:
                    break
                self._take(message, fds)
        except (OSError, ValueError) as exc:
            log.warning("lost the fork server: %s", exc)
        with self._changed:
            self.alive = False
            if self._running:
                log.warning("the fork server exited with %d shims running", len(self._running))
            self._running.clear()
            if self._standby is not None:
                self._standby.sock.close()
                self._standby = None
            self._changed.notify_all()
        self._sock.close()
        self._proc.wait()

    def _take(self, message: dict[str, Any], fds: list[int]) -> None:
        """Keep an offered standby, or record how a child ended."""
        with self._changed:
            if "standby" in message and len(fds) == 1:
                if self._standby is not None:
                    self._standby.sock.close()
                self._standby = _Standby(message["standby"], socket.socket(fileno=fds.pop()))
            elif "exited" in message:
                pid = message["exited"]
                if self._standby is not None and self._standby.pid == pid:  # it died waiting
                    self._standby.sock.close()
                    self._standby = None
                elif pid in self._running:
                    self._running.discard(pid)
                    self._exits[pid] = ShimExit(message["status"], bool(message["stopped"]))
            for fd in fds:
                os.close(fd)
            self._changed.notify_all()


@dataclass(frozen=True)
class _Standby:
    """A child of the server waiting for a spawn request on ``sock``."""

    pid: int
    sock: socket.socket


_lock = threading.Lock()
_server: ForkServer | None = None
_fork_hook = False


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
    # A forked child must not keep the parent's socket open, or the server would outlive the
    # parent; it starts its own server when it first spawns. Another thread of the parent may
    # have held the lock at the fork.
    global _server, _lock
    _lock = threading.Lock()
    if _server is not None:
        _server.close()
        _server = None

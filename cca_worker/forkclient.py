"""The pool process's side of its fork server (``forkserver.py``): start it on first use,
send spawn and stop requests, and collect the exit status of each shim."""

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
        self._replies: list[dict[str, Any]] = []
        self._exits: dict[int, ShimExit] = {}
        self._running: set[int] = set()
        self.alive = True
        threading.Thread(target=self._read, name="cca-fork-server", daemon=True).start()

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], cwd: str, grace_s: float,
              stdio: tuple[int, int, int]) -> int:
        """Start a shim running ``argv`` (its program already resolved); return its pid.
        Raises OSError if the server cannot start it."""
        request = {"op": "spawn", "argv": list(argv), "env": dict(env), "cwd": cwd,
                   "grace_s": grace_s}
        with self._spawn_lock:
            with self._send_lock:
                forkserver.send(self._sock, request, stdio)
            with self._changed:
                if not self._changed.wait_for(lambda: self._replies or not self.alive,
                                              _SPAWN_REPLY_S):
                    self._proc.kill()  # a late reply would answer the next request
                    raise OSError(f"the fork server did not answer within {_SPAWN_REPLY_S:g}s")
                if not self._replies:
                    raise OSError("the fork server exited")
                reply = self._replies.pop(0)
        if "error" in reply:
            raise OSError(reply["error"])
        return int(reply["started"])

    def stop(self, pid: int) -> None:
        """Ask for SIGTERM to the shim ``pid`` if it still runs; return at once."""
        try:
            with self._send_lock:
                forkserver.send(self._sock, {"op": "stop", "pid": pid})
        except OSError:
            pass  # the server is gone, and with it the shim got SIGTERM

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
        """Close this process's end (for a forked child: the parent still owns the server)."""
        self._sock.close()

    def _read(self) -> None:
        try:
            while (message := forkserver.receive(self._sock)[0]) is not None:
                with self._changed:
                    if "exited" in message:
                        self._running.discard(message["exited"])
                        self._exits[message["exited"]] = ShimExit(message["status"],
                                                                  bool(message["stopped"]))
                    else:
                        if "started" in message:
                            self._running.add(message["started"])
                        self._replies.append(message)
                    self._changed.notify_all()
        except (OSError, ValueError) as exc:
            log.warning("lost the fork server: %s", exc)
        with self._changed:
            self.alive = False
            if self._running:
                log.warning("the fork server exited with %d shims running", len(self._running))
            self._running.clear()
            self._changed.notify_all()
        self._sock.close()
        self._proc.wait()


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

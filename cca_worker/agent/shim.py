"""The reaper shim: runs one agent so that nothing it starts outlives it (Linux only; stdlib
only, started by ``process.spawn`` as ``python -I -S``).

A shim is a child subreaper: every orphan of the agent's tree (a ``setsid`` shell of claude's
Bash tool, say) is re-parented to it rather than to init. Its stdin, stdout and stderr are the
agent's. On its control socket it reads one request, a JSON line ``{"argv", "env", "cwd",
"grace_s"}``, starts the agent (``argv[0]`` already resolved) in a session of its own with
exactly that environment, and then:

* on a ``stop`` line it sends the agent SIGTERM, and SIGKILL ``grace_s`` seconds later;
* on the end of the socket (the pool process died) or SIGTERM, SIGINT or SIGHUP (among them
  the SIGTERM the kernel sends when its parent dies) it does the same;
* it writes ``{"agent": pid}`` on the socket once the agent runs: should the shim be
  killed, the pool's side kills the agent's tree itself;
* once the agent has exited, it SIGKILLs and reaps every remaining descendant, writes
  ``{"returncode", "stopped"}`` on the socket and exits: the agent's exit code, 128+N if
  signal N killed it, 127 if it could not be started; ``stopped`` says whether a stop line
  reached it while the agent ran.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sys
import time
from types import FrameType
from typing import Any

from cca_worker.agent import reaper

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_INHERITED_IGNORES = (signal.SIGPIPE, signal.SIGXFSZ)  # Python ignores these; exec keeps that
_CLEANUP_LIMIT_S = 10.0
_NOT_STARTED = 127
_MAX_REQUEST = 8 << 20


def main() -> None:
    """``python -I -S -c BOOT ROOT FD PARENT``: serve the request on socket FD, unless
    PARENT, the pool process, is already gone."""
    sock = socket.socket(fileno=int(sys.argv[2]))
    os.set_inheritable(sock.fileno(), False)
    serve(sock, parent=int(sys.argv[3]))


def serve(sock: socket.socket, parent: int) -> None:
    """Run the one request that arrives on ``sock``. Changes this process's signal handling
    for good: call it only in a process made for it."""
    reaper.make_subreaper()
    reaper.set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # it died before the death signal was set: start nothing
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # the reaper waits for it
    woken, wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake, warn_on_full_buffer=False)
    for sig in _STOP_SIGNALS:
        signal.signal(sig, _note)
    control = _Control(sock)
    request = _request(control)
    if request is None or select.select([woken], [], [], 0)[0]:
        return
    returncode, stopped = _run(request, control, woken)
    with contextlib.suppress(OSError):  # the pool process is gone; the agent's tree too
        sock.sendall(json.dumps({"returncode": returncode, "stopped": stopped}).encode() + b"\n")


def _note(signum: int, frame: FrameType | None) -> None:
    """A stop signal's handler: the wake-up fd already carries it to the select loop."""


class _Control:
    """The lines of the control socket, read as they come (a stop line may arrive in the same
    read as the request)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def has_line(self) -> bool:
        return b"\n" in self.buffer

    def next_line(self) -> bytes | None:
        """The next line (blocking); None at the end of the socket or past the size limit."""
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(1 << 16)
            except OSError:
                return None
            if not chunk or len(self.buffer) > _MAX_REQUEST:
                return None
            self.buffer += chunk
        line, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer = bytearray(rest)
        return line


def _request(control: _Control) -> dict[str, Any] | None:
    """The request line; None if the pool process is gone or sent nonsense."""
    try:
        request = json.loads(control.next_line() or b"null")
    except ValueError:
        return None
    return request if isinstance(request, dict) else None


def _run(request: dict[str, Any], control: _Control, woken: int) -> tuple[int, bool]:
    """Run the agent until it and its tree are gone; return its exit code and whether a stop
    line reached it."""
    agent = _start(request)
    if agent is None:
        return _NOT_STARTED, False
    with contextlib.suppress(OSError):  # for the pool's side, should this shim die first
        control.sock.sendall(json.dumps({"agent": agent}).encode() + b"\n")
    stopped = _supervise(agent, float(request["grace_s"]), control, woken)
    _, status = os.waitpid(agent, 0)
    if survivors := reaper.kill_descendants(_CLEANUP_LIMIT_S):
        os.write(2, f"cca-reaper: {survivors} descendants did not die\n".encode())
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code, stopped


def _start(request: dict[str, Any]) -> int | None:
    """Start the agent (vfork and exec) on this shim's stdio, every signal unblocked and at
    its default, then let go of stdout: its end is the agent tree's. None, with the reason on
    stderr, if it cannot be started."""
    argv = request["argv"]
    try:
        os.chdir(request["cwd"])
        return os.posix_spawn(argv[0], argv, request["env"], setsid=True, setsigmask=(),
                              setsigdef=_INHERITED_IGNORES)
    except OSError as exc:
        os.write(2, f"cca-reaper: cannot run {argv[0]!r}: {exc}\n".encode(errors="replace"))
        return None
    finally:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)


def _supervise(agent: int, grace_s: float, control: _Control, woken: int) -> bool:
    """Wait for ``agent`` to exit, turning a stop line, the end of the socket or a stop
    signal into SIGTERM, then SIGKILL after ``grace_s``; return whether a stop line came.
    Leaves the agent to be reaped."""
    exited, pool = os.pidfd_open(agent), control.sock.fileno()
    watched = [exited, pool, woken]
    stopped = terminated = False
    kill_at: float | None = None
    try:
        while True:
            timeout = None if kill_at is None else max(0.0, kill_at - time.monotonic())
            ready = [pool] if control.has_line() else select.select(watched, [], [], timeout)[0]
            if exited in ready:
                return stopped
            stop = False
            if woken in ready:
                os.read(woken, 64)
                stop = True
            if pool in ready:
                line = control.next_line()
                if line is None:
                    watched.remove(pool)
                    stop = True
                elif line.strip() == b"stop":
                    stop = stopped = True
            if stop and not terminated:
                terminated = True
                os.kill(agent, signal.SIGTERM)  # safe: it is not reaped until we return
                kill_at = time.monotonic() + grace_s
            elif kill_at is not None and time.monotonic() >= kill_at:
                os.kill(agent, signal.SIGKILL)
                kill_at = None
    finally:
        os.close(exited)

"""The fork server: one small, long-lived process per pool process that forks a reaper shim
for each agent on request (Linux only; stdlib only, started as its own interpreter).

Starting each shim as a fresh interpreter cost about 18 ms per agent; a fork of this idle
process costs well under one, and the server even forks each shim ahead of its request (a
standby waiting on a socket of its own), so a request costs a hand-over of the request and
the agent's stdio, not a fork. The server is the shims' parent, so each shim still gets
SIGTERM when the server dies, and the server exits as soon as its socket reaches end of
file, which the kernel makes happen when the pool process dies. It is a subreaper too: if
a shim is killed before its agent, the server adopts the agent and kills its tree::

    pool process ══ socket ══ fork server ── shim (subreaper) ── claude ── tools…
                                          ── shim ── claude ── …

Messages on the socket, each a 4-byte big-endian length and a JSON object:

* pool → server: ``{"op": "spawn", "argv", "env", "cwd", "grace_s"}`` with the agent's stdin,
  stdout and stderr attached as file descriptors; ``{"op": "stop", "pid"}``.
* server → pool: ``{"started": pid}`` or ``{"error": message}`` for each spawn, in order;
  ``{"exited": pid, "status": wait status, "stopped": bool}`` once a shim is reaped, where
  ``stopped`` says whether a stop request reached it while it ran.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import struct
import time
from collections.abc import Sequence
from typing import Any

from cca_worker import reaper

_HEADER = struct.Struct(">I")
_STDIO_FDS = 3
_MAX_MESSAGE = 64 << 20
_ORPHANS_LIMIT_S = 10.0


def send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    """Send one message, with ``fds`` attached to its first byte. Raises OSError."""
    data = json.dumps(message).encode()
    frame = _HEADER.pack(len(data)) + data
    sent = socket.send_fds(sock, [frame], list(fds)) if fds else 0
    if sent < len(frame):  # sendall of nothing still writes, and fails once the peer left
        sock.sendall(frame[sent:])


def receive(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """The next message and the file descriptors sent with it; ``(None, [])`` at end of
    file. Raises OSError, and ValueError for a malformed message."""
    header, fds = b"", []
    while len(header) < _HEADER.size:
        data, got, _, _ = socket.recv_fds(sock, _HEADER.size - len(header), _STDIO_FDS,
                                          socket.MSG_CMSG_CLOEXEC)
        fds += got
        if not data:
            _close(fds)
            return None, []
        header += data
    (size,) = _HEADER.unpack(header)
    if size > _MAX_MESSAGE:
        raise ValueError(f"message of {size} bytes")
    body = bytearray()
    while len(body) < size:
        chunk = sock.recv(min(size - len(body), 1 << 20))
        if not chunk:
            _close(fds)
            return None, []
        body += chunk
    return json.loads(body), fds


def serve(fd: int) -> None:
    """Serve spawn and stop requests on the connected stream socket ``fd`` until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the worker, which ends us
    reaper.make_subreaper()
    server = os.getpid()
    sock = socket.socket(fileno=fd)
    shims: dict[int, int] = {}  # pidfd -> pid, for every shim not yet reaped
    stopped: set[int] = set()
    standby = _Standby(server)
    while True:
        ready, _, _ = select.select([fd, standby.pidfd, *shims], [], [])
        if standby.pidfd in ready:  # it died waiting (killed): replace it
            standby.discard()
            standby = _Standby(server)
        for pidfd in ready:
            if pidfd in shims:
                pid = shims.pop(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                if os.WIFSIGNALED(status):  # the shim may have died before its command
                    _kill_orphans({*shims.values(), standby.pid})
                send(sock, {"exited": pid, "status": status, "stopped": pid in stopped})
                stopped.discard(pid)
        if fd in ready:
            message, fds = receive(sock)
            if message is None:
                return
            if message["op"] == "spawn":
                reply = _hand_over(standby, message, fds, shims)
                send(sock, reply)
                if "error" in reply:
                    standby.discard()
                standby = _Standby(server)  # the next fork happens after the reply
            elif message["op"] == "stop" and message["pid"] in shims.values():
                os.kill(message["pid"], signal.SIGTERM)  # not reaped yet, so still ours
                stopped.add(message["pid"])


class _Standby:
    """A child forked ahead of the next spawn request, waiting for it on a socket of its own,
    so that the request does not wait for a fork."""

    def __init__(self, server: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            ours.close()
            _await_request(theirs, server)
        theirs.close()
        self.pid, self.sock, self.pidfd = pid, ours, os.pidfd_open(pid)

    def discard(self) -> None:
        """Kill and reap it (a child never handed a request)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.pidfd)
        self.sock.close()


def _hand_over(standby: _Standby, request: dict[str, Any], fds: list[int],
               shims: dict[int, int]) -> dict[str, Any]:
    """Give ``request`` and ``fds`` (the agent's stdio) to the standby, which becomes its
    shim; the reply to send."""
    try:
        if len(fds) != _STDIO_FDS:
            return {"error": f"expected {_STDIO_FDS} file descriptors, got {len(fds)}"}
        send(standby.sock, request, fds)
        shims[standby.pidfd] = standby.pid
        return {"started": standby.pid}
    except OSError as exc:
        return {"error": f"cannot start the shim: {exc}"}
    finally:
        _close(fds)
        standby.sock.close()


def _await_request(sock: socket.socket, server: int) -> None:
    """In a standby: keep only ``sock``, wait for a request on it and become its shim, or
    exit when the server is gone."""
    try:
        keep = sock.fileno()
        os.closerange(_STDIO_FDS, keep)  # the server's socket and pidfds
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
        request, fds = receive(sock)
    except BaseException as exc:
        os.write(2, f"cca-forkserver: a standby failed: {exc!r}\n".encode(errors="replace"))
        os._exit(1)
    if request is None:
        os._exit(0)
    _become_shim(request, fds, server)


def _become_shim(request: dict[str, Any], stdio: list[int], server: int) -> None:
    """In the forked child: take the agent's stdio, session and cwd, run the shim, exit."""
    code = 127
    try:
        os.setsid()
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        os.closerange(_STDIO_FDS, os.sysconf("SC_OPEN_MAX"))  # the socket, pidfds, the originals
        os.chdir(request["cwd"])
        code = reaper.run(request["argv"], request["env"], float(request["grace_s"]), server)
    except BaseException as exc:  # never return into the server's loop
        os.write(2, f"cca-reaper: {exc}\n".encode(errors="replace"))
    finally:
        os._exit(code)


def _kill_orphans(shims: set[int]) -> None:
    """Kill the tree of every child that is not a shim: a command whose shim was killed
    before it is adopted by this subreaper, and must not run on unwatched."""
    server = os.getpid()
    deadline = time.monotonic() + _ORPHANS_LIMIT_S
    while time.monotonic() < deadline:
        orphans = [pid for pid, (ppid, _) in reaper.process_table().items()
                   if ppid == server and pid not in shims]
        if not orphans:
            return
        for pid in orphans:
            reaper.kill_tree(pid)


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)

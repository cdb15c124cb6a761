"""The fork server: one small, long-lived process per pool process that forks a reaper shim
for each agent on request (Linux only; stdlib only, started as its own interpreter).

Starting each shim as a fresh interpreter cost about 18 ms per agent; a fork of this idle
process costs well under one. The server is the shims' parent, so each shim still gets
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
    sock = socket.socket(fileno=fd)
    shims: dict[int, int] = {}  # pidfd -> pid, for every shim not yet reaped
    stopped: set[int] = set()
    while True:
        ready, _, _ = select.select([fd, *shims], [], [])
        for pidfd in ready:
            if pidfd != fd:
                pid = shims.pop(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                if os.WIFSIGNALED(status):  # the shim may have died before its command
                    _kill_orphans(set(shims.values()))
                send(sock, {"exited": pid, "status": status, "stopped": pid in stopped})
                stopped.discard(pid)
        if fd in ready:
            message, fds = receive(sock)
            if message is None:
                return
            if message["op"] == "spawn":
                send(sock, _spawn(message, fds, shims))
            elif message["op"] == "stop" and message["pid"] in shims.values():
                os.kill(message["pid"], signal.SIGTERM)  # not reaped yet, so still ours
                stopped.add(message["pid"])


def _spawn(request: dict[str, Any], fds: list[int], shims: dict[int, int]) -> dict[str, Any]:
    """Fork a shim for ``request`` with ``fds`` as its stdio; the reply to send."""
    try:
        if len(fds) != _STDIO_FDS:
            return {"error": f"expected {_STDIO_FDS} file descriptors, got {len(fds)}"}
        server = os.getpid()
        pid = os.fork()
        if pid == 0:
            _become_shim(request, fds, server)
        shims[os.pidfd_open(pid)] = pid
        return {"started": pid}
    except OSError as exc:
        return {"error": f"cannot start the shim: {exc}"}
    finally:
        _close(fds)


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

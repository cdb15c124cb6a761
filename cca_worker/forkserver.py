"""The fork server: one small, long-lived process per pool process that forks a reaper shim
for each agent on request (Linux only; stdlib only, started as its own interpreter).

Starting each shim as a fresh interpreter cost about 18 ms per agent; a fork of this idle
process costs well under one, and the server even forks each shim ahead of its request: a
standby that waits on a socket of its own, whose other end the server hands to the pool
process. A spawn is then one message from the pool process straight to the standby, which
becomes the shim, not a fork and not a relay through the server; the server forks the next
standby a little later (``after_s``, or once the shim exits if that is sooner), so that fork
does not compete with the agent's start.

The server is the shims' parent, so each shim still gets SIGTERM when the server dies, and
the server exits as soon as its socket reaches end of file, which the kernel makes happen
when the pool process dies. It is a subreaper too: if a shim is killed before its agent,
the server adopts the agent and kills its tree::

    pool process ══ socket ══ fork server ── shim (subreaper) ── claude ── tools…
         ╚════════ socket ════════════════── standby

Messages on each socket, each a 4-byte big-endian length and a JSON object:

* server → pool: ``{"standby": pid}`` with the pool's end of the standby's socket attached;
  ``{"exited": pid, "status": wait status, "stopped": bool}`` once a child (a shim, or a
  standby that died waiting) is reaped, where ``stopped`` says whether a stop request
  reached it while it ran.
* pool → server: ``{"op": "standby", "used": pid or null, "after_s"}`` (the standby ``pid``
  was used, or none is held: fork the next one after ``after_s``); ``{"op": "stop", "pid"}``.
* pool → standby: ``{"argv", "env", "cwd", "grace_s"}`` with the agent's stdin, stdout and
  stderr attached.
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
    """Serve the pool process on the connected stream socket ``fd`` until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the worker, which ends us
    reaper.make_subreaper()
    sock = socket.socket(fileno=fd)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the pool process died
        _serve(sock)


def _serve(sock: socket.socket) -> None:
    server = os.getpid()
    children: dict[int, int] = {}  # pidfd -> pid: the standby and every shim not yet reaped
    stopped: set[int] = set()
    standby: int | None = None  # the pid of the standby the pool holds, until it is used
    fork_at: float | None = time.monotonic()  # when to fork the next standby
    while True:
        wait_s = None if fork_at is None else max(0.0, fork_at - time.monotonic())
        ready, _, _ = select.select([sock.fileno(), *children], [], [], wait_s)
        if fork_at is not None and time.monotonic() >= fork_at:
            standby, fork_at = _offer_standby(sock, server, children), None
        for pidfd in ready:
            if pidfd in children:
                pid = children.pop(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                if pid == standby:
                    standby = None
                elif fork_at is not None:  # its agent ended: a fork now competes with none
                    fork_at = time.monotonic()
                if os.WIFSIGNALED(status):  # a shim may have died before its command
                    _kill_orphans(set(children.values()))
                send(sock, {"exited": pid, "status": status, "stopped": pid in stopped})
                stopped.discard(pid)
        if sock.fileno() in ready:
            message, fds = receive(sock)
            _close(fds)
            if message is None:
                return
            if message["op"] == "standby":
                standby = None if message["used"] == standby else standby
                if standby is None:
                    due = time.monotonic() + float(message["after_s"])
                    fork_at = due if fork_at is None else min(fork_at, due)
            elif message["op"] == "stop" and message["pid"] in children.values():
                os.kill(message["pid"], signal.SIGTERM)  # not reaped yet, so still ours
                stopped.add(message["pid"])


def _offer_standby(sock: socket.socket, server: int, children: dict[int, int]) -> int:
    """Fork a standby, a child that waits for a spawn request on a socket of its own, and
    send the pool process the other end; return its pid."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        ours.close()
        _await_request(theirs, server)
    theirs.close()
    children[os.pidfd_open(pid)] = pid
    with ours:
        send(sock, {"standby": pid}, [ours.fileno()])
    return pid


def _await_request(sock: socket.socket, server: int) -> None:
    """In a standby: keep only ``sock``, wait for a request on it and become its shim; exit
    when the pool process drops the socket or the server dies."""
    try:
        reaper.set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != server:
            os._exit(0)
        keep = sock.fileno()
        os.closerange(_STDIO_FDS, keep)  # the server's socket and pidfds
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
        request, fds = receive(sock)
    except BaseException as exc:
        os.write(2, f"cca-forkserver: a standby failed: {exc!r}\n".encode(errors="replace"))
        os._exit(1)
    if request is None:
        os._exit(0)
    if len(fds) != _STDIO_FDS:
        os.write(2, f"cca-forkserver: expected {_STDIO_FDS} file descriptors, got "
                    f"{len(fds)}\n".encode())
        os._exit(127)
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

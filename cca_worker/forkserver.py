"""The fork server: one small, long-lived process per pool process that forks reaper shims
(``shim.py``) for it (Linux only; stdlib only, started as its own interpreter).

Starting a shim as a fresh interpreter cost about 18 ms; a fork of this idle process costs
well under one, and the server forks the first shim before it is asked for one. It sends the
pool process its end of each shim's socket, and from then on the pool process and the shim
talk directly: a shim runs one agent after another, so most agents need no fork at all.

The server is the shims' parent, so each shim gets SIGTERM when the server dies, and the
server exits as soon as its socket reaches end of file, which the kernel makes happen when
the pool process dies. It is a subreaper too: if a shim is killed before its agent, the
server adopts the agent and kills its tree::

    pool process ══ socket ══ fork server ── shim (subreaper) ── claude ── tools…
         ╚════════════ socket ════════════════╝

On its socket the pool process sends ``{"op": "shim"}`` for another shim, and the server
answers ``{"shim": pid}`` with the pool's end of that shim's socket attached
(``wire.py`` frames them).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import time

from cca_worker import reaper, shim, wire

_ORPHANS_LIMIT_S = 10.0


def serve(fd: int) -> None:
    """Serve the pool process on the connected stream socket ``fd`` until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the worker, which ends us
    reaper.make_subreaper()
    sock = socket.socket(fileno=fd)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the pool process died
        _serve(sock)


def _serve(sock: socket.socket) -> None:
    server = os.getpid()
    shims: dict[int, int] = {}  # pidfd -> pid of every shim not yet reaped
    _offer_shim(sock, server, shims)  # the first spawn need not wait for a fork
    while True:
        ready, _, _ = select.select([sock.fileno(), *shims], [], [])
        for pidfd in ready:
            if pidfd in shims:
                pid = shims.pop(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                if os.WIFSIGNALED(status):  # a shim may have died before its agent
                    _kill_orphans(set(shims.values()))
        if sock.fileno() in ready:
            message, fds = wire.receive(sock)
            wire.close(fds)
            if message is None:
                return
            if message.get("op") == "shim":
                _offer_shim(sock, server, shims)


def _offer_shim(sock: socket.socket, server: int, shims: dict[int, int]) -> None:
    """Fork a shim and send the pool process its end of the shim's socket."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        ours.close()
        _be_shim(theirs, server)
    theirs.close()
    shims[os.pidfd_open(pid)] = pid
    with ours:
        wire.send(sock, {"shim": pid}, [ours.fileno()])


def _be_shim(sock: socket.socket, server: int) -> None:
    """In the forked child: keep only ``sock`` and stdio, serve as a shim, and exit; never
    return into the server's loop."""
    code = 0
    try:
        os.setsid()  # a Ctrl-C or hang-up of the worker's terminal is not for the shim
        keep = sock.fileno()
        os.closerange(3, keep)  # the server's socket and pidfds
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
        shim.serve(sock, server)
    except BaseException as exc:
        os.write(2, f"cca-reaper: a shim failed: {exc!r}\n".encode(errors="replace"))
        code = 1
    finally:
        os._exit(code)


def _kill_orphans(shims: set[int]) -> None:
    """Kill the tree of every child that is not a shim: an agent whose shim was killed
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

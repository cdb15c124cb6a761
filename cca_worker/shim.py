"""The reaper shim: runs the agents its pool process sends it, one at a time, so that
nothing an agent starts outlives it (Linux only; stdlib only, forked by ``forkserver.py``).

A shim is a child subreaper: every orphan of an agent's tree (a ``setsid`` shell of claude's
Bash tool, say) is re-parented to it rather than to init. For each request on its socket,
``{"argv", "env", "cwd", "grace_s"}`` with the agent's stdin, stdout and stderr attached, it
replies ``{"accepted": true}`` (a shim that dies or is told to stop before it accepts has
started nothing, so the pool process can send the request elsewhere), starts the agent
(``argv[0]`` already resolved) in a session of its own with exactly that environment, and
then:

* on ``{"op": "stop"}`` it sends the agent SIGTERM, and SIGKILL ``grace_s`` seconds later; a
  stop that arrives after its run ended is ignored;
* on the end of its socket (the pool process died) or SIGTERM, SIGINT or SIGHUP (among them
  the SIGTERM the kernel sends when the fork server dies) it does the same, and exits after;
* once the agent has exited, it SIGKILLs and reaps every remaining descendant and replies
  ``{"returncode", "stopped"}``: the agent's exit code, 128+N if signal N killed it, 127 if
  it could not be started; ``stopped`` says whether a stop request reached it running.

A shim serves many agents in turn: a fresh fork for each cost about 2.5 ms of CPU, most of
it page faults as the forked interpreter touched its memory.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import time
from types import FrameType
from typing import Any

from cca_worker import reaper, wire

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_INHERITED_IGNORES = (signal.SIGPIPE, signal.SIGXFSZ)  # Python ignores these; exec keeps that
_CLEANUP_LIMIT_S = 10.0
_NOT_STARTED = 127


def serve(sock: socket.socket, parent: int) -> None:
    """Run the requests that arrive on ``sock`` until it closes, a stop signal arrives or
    ``parent`` (the fork server) is gone. Changes this process's signal handling for good:
    call it only in a process made for it."""
    reaper.make_subreaper()
    reaper.set_parent_death_signal(signal.SIGTERM)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # reaper waits for it
    woken, wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake, warn_on_full_buffer=False)
    for sig in _STOP_SIGNALS:
        signal.signal(sig, _note)
    while os.getppid() == parent:
        ready, _, _ = select.select([sock.fileno(), woken], [], [])
        if woken in ready:
            return
        request, fds = _receive(sock)
        if request is None:
            return
        if request.get("op") == "stop":  # for a run that has already ended
            wire.close(fds)
            continue
        if select.select([woken], [], [], 0)[0]:  # told to stop meanwhile: leave it unaccepted
            wire.close(fds)
            return
        try:
            wire.send(sock, {"accepted": True})
        except OSError:
            wire.close(fds)
            return
        returncode, stopped, ending = _run(request, fds, sock, woken)
        try:
            wire.send(sock, {"returncode": returncode, "stopped": stopped})
        except OSError:
            return
        if ending:
            return


def _note(signum: int, frame: FrameType | None) -> None:
    """A stop signal's handler: the wake-up fd already carries it to the select loop."""


def _receive(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """The next message; ``(None, [])`` if the pool process is gone or talks nonsense."""
    try:
        return wire.receive(sock)
    except (OSError, ValueError):
        return None, []


def _run(request: dict[str, Any], stdio: list[int], sock: socket.socket,
         woken: int) -> tuple[int, bool, bool]:
    """Run one agent until it and its tree are gone; return its exit code, whether a stop
    request reached it, and whether this shim must exit after (its pool or server left)."""
    agent = _start(request, stdio)
    if agent is None:
        return _NOT_STARTED, False, False
    stopped, ending = _supervise(agent, float(request["grace_s"]), sock, woken)
    _, status = os.waitpid(agent, 0)
    os.chdir("/")  # hold no agent's directory while idle
    if survivors := reaper.kill_descendants(_CLEANUP_LIMIT_S):
        os.write(2, f"cca-reaper: {survivors} descendants did not die\n".encode())
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code, stopped, ending


def _start(request: dict[str, Any], stdio: list[int]) -> int | None:
    """Start the agent (vfork and exec) with its stdio, every signal unblocked and at its
    default; None, with the reason on its stderr, if it cannot be started."""
    argv = request["argv"]
    try:
        if len(stdio) != wire.MAX_FDS:
            raise OSError(f"expected {wire.MAX_FDS} file descriptors, got {len(stdio)}")
        os.chdir(request["cwd"])
        return os.posix_spawn(
            argv[0], argv, request["env"], setsid=True, setsigmask=(),
            setsigdef=_INHERITED_IGNORES,
            file_actions=[(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(stdio)])
    except OSError as exc:
        err = stdio[2] if len(stdio) == wire.MAX_FDS else 2
        os.write(err, f"cca-reaper: cannot run {argv[0]!r}: {exc}\n".encode(errors="replace"))
        return None
    finally:
        wire.close(stdio)


def _supervise(agent: int, grace_s: float, sock: socket.socket, woken: int) -> tuple[bool, bool]:
    """Wait for ``agent`` to exit, turning a stop request, the end of ``sock`` or a stop
    signal into SIGTERM, then SIGKILL after ``grace_s``; return whether a stop request came
    and whether the shim must exit after this run. Leaves the agent to be reaped."""
    exited, pool = os.pidfd_open(agent), sock.fileno()
    watched = [exited, pool, woken]
    stopped = ending = terminated = False
    kill_at: float | None = None
    try:
        while True:
            timeout = None if kill_at is None else max(0.0, kill_at - time.monotonic())
            ready, _, _ = select.select(watched, [], [], timeout)
            if exited in ready:
                return stopped, ending
            stop = False
            if woken in ready:
                os.read(woken, 64)
                stop = ending = True
            if pool in ready:
                message, fds = _receive(sock)
                wire.close(fds)
                if message is None:
                    watched.remove(pool)
                    stop = ending = True
                elif message.get("op") == "stop":
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

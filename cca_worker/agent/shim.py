"""The reaper shim: runs one agent so that nothing it starts outlives it (Linux only; started by
``process.spawn`` as ``python -I -S`` for each agent, so it imports as little as it can: about
20 ms from exec to the agent's start, of which 13 are the interpreter's own).

A shim is a child subreaper: every orphan of the agent's tree (a ``setsid`` shell of claude's
Bash tool, say) is re-parented to it rather than to init. Its stdin, stdout and stderr are the
agent's. Its control socket carries, from the pool process, one request (:func:`encode` of
``{"argv", "env", "cwd", "grace_s", "nice"}``), then any ``stop`` line; and to the pool
process, the lines ``agent PID`` once the agent runs and ``end RETURNCODE STOPPED`` at the
end. It takes the niceness ``nice`` (its own and the agent's: agents yield the CPU to the
worker), starts the agent (``argv[0]`` already resolved) in a session of its own with exactly
that environment, and then:

* on a ``stop`` line it sends the agent SIGTERM, and SIGKILL ``grace_s`` seconds later;
* on the end of the socket (the pool process died) or SIGTERM, SIGINT or SIGHUP (among them
  the SIGTERM the kernel sends when its parent dies) it does the same;
* once the agent has exited, it SIGKILLs and reaps every remaining descendant, reports the
  agent's exit code (128+N if signal N killed it, 127 if it could not be started) and whether
  a stop line reached it while it ran, and exits. Should the shim be killed first, the pool's
  side kills the tree of the agent it reported.
"""

from __future__ import annotations

import marshal
import os
import select
import signal
import sys
import time
from types import FrameType

from cca_worker.agent import reaper

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_INHERITED_IGNORES = (signal.SIGPIPE, signal.SIGXFSZ)  # Python ignores these; exec keeps that
_CLEANUP_LIMIT_S = 10.0
_NOT_STARTED = 127
_SIZE_BYTES = 8
_MAX_REQUEST = 8 << 20
_READ_BYTES = 1 << 16
# What a request holds: argv (its program resolved), environment, working directory, grace,
# niceness.
Request = tuple[list[str], dict[str, str], str, float, int]


def encode(request: dict[str, object]) -> bytes:
    """A request as the shim reads it: its size, then its marshalled form (no import costs
    less to read: ``marshal`` is built in)."""
    payload = marshal.dumps(request)
    return len(payload).to_bytes(_SIZE_BYTES, "big") + payload


def main() -> None:
    """``python -I -S -c BOOT ROOT FD PARENT``: serve the request on socket FD, unless
    PARENT, the pool process, is already gone."""
    control = int(sys.argv[2])
    os.set_inheritable(control, False)
    serve(control, parent=int(sys.argv[3]))


def serve(control: int, parent: int) -> None:
    """Run the one request that arrives on the socket ``control``. Changes this process's
    signal handling for good: call it only in a process made for it."""
    reaper.make_subreaper()
    reaper.set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # it died before the death signal was set: start nothing
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # the reaper waits for it
    woken, wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake, warn_on_full_buffer=False)
    for sig in _STOP_SIGNALS:
        signal.signal(sig, _note)
    channel = _Channel(control)
    request = channel.request()
    if request is None or select.select([woken], [], [], 0)[0]:
        return
    returncode, stopped = _run(request, channel, woken)
    channel.tell(f"end {returncode} {int(stopped)}")


def _note(signum: int, frame: FrameType | None) -> None:
    """A stop signal's handler: the wake-up fd already carries it to the select loop."""


class _Channel:
    """The control socket, read as bytes come (a stop line may arrive with the request)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.open = True

    def request(self) -> Request | None:
        """The request; None if the pool process is gone or sent nonsense."""
        if not self._fill(_SIZE_BYTES):
            return None
        size = int.from_bytes(self.buffer[:_SIZE_BYTES], "big")
        if size > _MAX_REQUEST or not self._fill(_SIZE_BYTES + size):
            return None
        payload = self.buffer[_SIZE_BYTES:_SIZE_BYTES + size]
        self.buffer = self.buffer[_SIZE_BYTES + size:]
        try:
            request = marshal.loads(payload)
            argv, env, cwd, grace_s, nice = (request["argv"], request["env"], request["cwd"],
                                             float(request["grace_s"]), int(request["nice"]))
        except (EOFError, ValueError, TypeError, KeyError):
            return None
        if not (isinstance(argv, list) and argv and isinstance(env, dict)
                and isinstance(cwd, str) and 0 <= nice <= 19):
            return None
        return argv, env, cwd, grace_s, nice

    def has_line(self) -> bool:
        return b"\n" in self.buffer

    def next_line(self) -> bytes | None:
        """The next control line; None at the end of the socket."""
        while b"\n" not in self.buffer:
            if not self._read():
                return None
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.strip()

    def tell(self, line: str) -> None:
        """Write a line to the pool process; if it is gone, so is the need."""
        try:  # noqa: SIM105 - contextlib would cost every shim an import
            os.write(self.fd, line.encode() + b"\n")
        except OSError:
            pass

    def _fill(self, size: int) -> bool:
        while len(self.buffer) < size:
            if not self._read():
                return False
        return True

    def _read(self) -> bool:
        try:
            chunk = os.read(self.fd, _READ_BYTES)
        except OSError:
            chunk = b""
        if not chunk:
            self.open = False
            return False
        self.buffer += chunk
        return True


def _run(request: Request, channel: _Channel, woken: int) -> tuple[int, bool]:
    """Run the agent until it and its tree are gone; return its exit code and whether a stop
    line reached it."""
    agent = _start(request)
    if agent is None:
        return _NOT_STARTED, False
    channel.tell(f"agent {agent}")
    stopped = _supervise(agent, request[3], channel, woken)
    _, status = os.waitpid(agent, 0)
    if survivors := reaper.kill_descendants(_CLEANUP_LIMIT_S):
        os.write(2, f"cca-reaper: {survivors} descendants did not die\n".encode())
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code, stopped


def _start(request: Request) -> int | None:
    """Start the agent (vfork and exec) on this shim's stdio, every signal unblocked and at
    its default, then let go of stdout: its end is the agent tree's. None, with the reason on
    stderr, if it cannot be started. The shim takes the agent's niceness first (posix_spawn
    cannot set it, and setting it after the start would miss what the agent forked)."""
    argv, env, cwd, _, nice = request
    try:
        os.chdir(cwd)
        os.nice(nice)
        return os.posix_spawn(argv[0], argv, env, setsid=True, setsigmask=(),
                              setsigdef=_INHERITED_IGNORES)
    except OSError as exc:
        os.write(2, f"cca-reaper: cannot run {argv[0]!r}: {exc}\n".encode(errors="replace"))
        return None
    finally:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)


def _supervise(agent: int, grace_s: float, channel: _Channel, woken: int) -> bool:
    """Wait for ``agent`` to exit, turning a stop line, the end of the socket or a stop
    signal into SIGTERM, then SIGKILL after ``grace_s``; return whether a stop line came.
    Leaves the agent to be reaped."""
    exited = os.pidfd_open(agent)
    stopped = terminated = False
    kill_at: float | None = None
    try:
        while True:
            watched = [exited, woken, *([channel.fd] if channel.open else [])]
            timeout = None if kill_at is None else max(0.0, kill_at - time.monotonic())
            ready = ([channel.fd] if channel.has_line()
                     else select.select(watched, [], [], timeout)[0])
            if exited in ready:
                return stopped
            stop = False
            if woken in ready:
                os.read(woken, 64)
                stop = True
            if channel.fd in ready:
                line = channel.next_line()
                if line is None:
                    stop = True
                elif line == b"stop":
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

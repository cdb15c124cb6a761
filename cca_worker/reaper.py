"""Run one command so that nothing it starts outlives it (Linux only).

:func:`run` turns the calling process into the command's shim: a child subreaper, so every
orphan of the command's tree (a ``setsid`` shell of claude's Bash tool, say) is re-parented
to it rather than to init. It runs the command with the shim's own stdio and exactly the
environment given, and then:

* on SIGTERM, SIGINT or SIGHUP -- including the SIGTERM the kernel sends when the shim's
  parent dies -- it sends SIGTERM to the command and SIGKILL ``grace_s`` seconds later;
* once the command has exited, it SIGKILLs and reaps every remaining descendant
  (if the shim itself is SIGKILLed first, the fork server, a subreaper too, adopts the
  command and does this);
* it returns the command's exit code, 128+N if signal N killed the command, 127 if the
  command could not be started, and 143 if told to stop before it started.

The fork server (``forkserver.py``) calls it in a fresh fork for each agent. Stdlib only,
with no side effects on import: ``cca_worker.process`` reuses its helpers.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
_WAKE_SIGNALS = _STOP_SIGNALS | {signal.SIGCHLD}
_INHERITED_IGNORES = (signal.SIGPIPE, signal.SIGXFSZ)  # Python ignores these; exec keeps that
_CLEANUP_LIMIT_S = 10.0
_KILL_WAIT_S = 5.0


def make_subreaper() -> None:
    """Make this process a child subreaper: orphaned descendants are re-parented to it.

    Raises NotImplementedError off Linux, OSError if prctl fails.
    """
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def set_parent_death_signal(sig: int) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent thread exits.

    Raises NotImplementedError off Linux, OSError if prctl fails.
    """
    _prctl(_PR_SET_PDEATHSIG, int(sig))


def _prctl(option: int, value: int) -> None:
    if not sys.platform.startswith("linux"):
        raise NotImplementedError("prctl() is Linux-only")
    if _libc().prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def process_table() -> dict[int, tuple[int, int]]:
    """Map every visible pid to ``(ppid, start time in clock ticks)``, read from /proc."""
    table: dict[int, tuple[int, int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (stat := read_stat(int(name))) is not None:
            table[int(name)] = (stat[1], stat[2])
    return table


def read_stat(pid: int) -> tuple[str, int, int] | None:
    """Return ``(state, ppid, start time)`` of ``pid``, or None if it no longer exists."""
    try:  # os.open: a file object would cost five more system calls per process
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name may contain spaces and parentheses; fields resume after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Map each pid below ``root`` in the process tree (zombies included) to its start time."""
    table = process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: dict[int, int] = {}
    todo = list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        if pid not in found:
            found[pid] = table[pid][1]
            todo.extend(children.get(pid, ()))
    return found


def kill_tree(root: int) -> None:
    """SIGKILL ``root`` and all its descendants, freezing the tree first so none escapes,
    and reap those that were this process's children."""
    stat = read_stat(root)
    if stat is None:
        return
    # A stopped process cannot fork or exit, so the set found this way is complete once it
    # stops growing (a process that exits before it is stopped orphans its children to a
    # subreaper above, which must look for them: see forkserver).
    members = {root: stat[2]}
    frontier = dict(members)
    while frontier:
        for pid, start in frontier.items():
            _signal(pid, start, signal.SIGSTOP)
        found = descendants(root)
        frontier = {pid: start for pid, start in found.items() if pid not in members}
        members.update(frontier)
    for pid, start in members.items():
        _signal(pid, start, signal.SIGKILL)
    _reap_killed(list(members))


def _signal(pid: int, start: int, sig: int) -> None:
    stat = read_stat(pid)
    if stat is not None and stat[2] == start:  # the pid was not reused meanwhile
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _reap_killed(pids: list[int]) -> None:
    """Wait until ``pids`` are gone or zombies; reap those that are this process's."""
    deadline = time.monotonic() + _KILL_WAIT_S
    pending = set(pids)
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            stat = read_stat(pid)
            if stat is None or stat[0] == "Z":
                pending.discard(pid)
        if pending:
            time.sleep(0.01)
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def run(argv: Sequence[str], env: Mapping[str, str], grace_s: float, parent: int) -> int:
    """Be the shim of ``argv`` (resolved path first) until it and its tree are gone; return
    the exit code described above. ``parent`` is the pid the caller expects as its parent:
    if that one is already gone, nothing is started.

    Blocks the stop signals and SIGCHLD for good: call it only in a process made for it.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, _WAKE_SIGNALS)
    for sig in _WAKE_SIGNALS:  # an inherited handler or SIG_IGN would swallow them
        signal.signal(sig, signal.SIG_DFL)
    make_subreaper()
    set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent or _STOP_SIGNALS & signal.sigpending():
        return 128 + signal.SIGTERM
    child = _start(argv, env)
    if child is None:
        return 127
    status = _supervise(child, grace_s)
    if survivors := _kill_descendants(_CLEANUP_LIMIT_S):
        os.write(2, f"cca-reaper: {survivors} descendants did not die\n".encode())
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _start(argv: Sequence[str], env: Mapping[str, str]) -> int | None:
    """Start the command (vfork and exec: a fork of this interpreter costs a millisecond
    more) with every signal unblocked and at its default; None if it cannot be started."""
    try:
        return os.posix_spawn(argv[0], list(argv), dict(env), setsigmask=(),
                              setsigdef=_INHERITED_IGNORES)
    except OSError as exc:
        os.write(2, f"cca-reaper: cannot run {argv[0]!r}: {exc}\n".encode(errors="replace"))
        return None


def _reap(child: int) -> int | None:
    """Reap every exited child; return the wait status of ``child`` if it was among them."""
    status = None
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == child:
            status = st


def _supervise(child: int, grace_s: float) -> int:
    """Wait for ``child`` to exit, relaying a stop request; return its wait status."""
    kill_at: float | None = None
    stopping = False
    while (status := _reap(child)) is None:
        info: signal.struct_siginfo | None
        if kill_at is None:
            info = signal.sigwaitinfo(_WAKE_SIGNALS)
        else:
            info = signal.sigtimedwait(_WAKE_SIGNALS, max(0.0, kill_at - time.monotonic()))
        if info is not None and info.si_signo in _STOP_SIGNALS and not stopping:
            stopping = True
            os.kill(child, signal.SIGTERM)  # safe: only this loop reaps, so the pid is ours
            kill_at = time.monotonic() + grace_s
        elif kill_at is not None and time.monotonic() >= kill_at:
            os.kill(child, signal.SIGKILL)
            kill_at = None
    return status


def _has_children() -> bool:
    """Whether this process has a child, running or exited, without reaping it. A subreaper
    whose own children are all gone has no descendants left either."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _kill_descendants(limit_s: float) -> int:
    """SIGKILL and reap every descendant; return how many were still alive at ``limit_s``."""
    if not _has_children():  # the usual end: skip reading the whole process table
        return 0
    deadline = time.monotonic() + limit_s
    while (found := descendants(os.getpid())) and time.monotonic() < deadline:
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _reap(-1)
        # Killed grandchildren re-parent to us before they can be reaped: wait for that.
        signal.sigtimedwait({signal.SIGCHLD}, 0.01)
    return len(found)

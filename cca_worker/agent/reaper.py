"""Process-tree tools for keeping every process an agent starts from outliving it (Linux
only): make a child subreaper, set a parent-death signal, read the process table from /proc,
and kill a whole tree, even one that forks while it is being killed.

The shim (``shim.py``) and the pool's side (``process.py``) use these. Stdlib only, with no
side effects on import.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sys
import time

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
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
    # subreaper above, which must look for them: the shim's kill_descendants).
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


def kill_left_behind(env_entry: str) -> int:
    """SIGKILL the trees of the processes whose environment holds ``env_entry`` (a slot's
    ``HOME=...``) under a parent whose does not: what a run left when its pool process and
    shim died before they could stop it (a sandbox whose bubblewrap was starting then misses
    its parent-death signal, and its init waits for the agent's processes for ever).
    Returns how many trees were killed."""
    entry = b"\0" + env_entry.encode() + b"\0"
    table = process_table()
    holders = {pid for pid in table if pid != os.getpid() and entry in _environ(pid)}
    roots = [pid for pid in holders if table[pid][0] not in holders]
    for pid in roots:
        kill_tree(pid)
    return len(roots)


def _environ(pid: int) -> bytes:
    """The environment ``pid`` started with, each entry between NULs ('' if unreadable)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            return b"\0" + file.read()
    except OSError:
        return b""


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


def _reap_exited() -> None:
    """Reap every child that has exited."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _has_children() -> bool:
    """Whether this process has a child, running or exited, without reaping it. A subreaper
    whose own children are all gone has no descendants left either."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def kill_descendants(limit_s: float) -> int:
    """SIGKILL and reap every descendant of this process, a subreaper with SIGCHLD blocked;
    return how many were still alive at ``limit_s``."""
    if not _has_children():  # the usual end: skip reading the whole process table
        return 0
    deadline = time.monotonic() + limit_s
    while (found := descendants(os.getpid())) and time.monotonic() < deadline:
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _reap_exited()
        # Killed grandchildren re-parent to us before they can be reaped: wait for that.
        signal.sigtimedwait({signal.SIGCHLD}, 0.01)
    return len(found)

"""Run one command so that nothing it starts outlives it (Linux only).

Usage: ``python -I -S reaper.py --grace SECONDS [--parent PID] -- ARGV...``

The shim makes itself a child subreaper, so every orphan of the command's tree (a
``setsid`` shell of claude's Bash tool, say) is re-parented to it rather than to init.
It runs ARGV with the shim's own stdio and exact environment, and then:

* on SIGTERM, SIGINT or SIGHUP -- including the SIGTERM the kernel sends when the parent
  dies -- it sends SIGTERM to the command and SIGKILL ``--grace`` seconds later;
* once the command has exited, it SIGKILLs and reaps every remaining descendant;
* it exits with the command's exit code, 128+N if signal N killed the command,
  127 if the command could not be started, 143 if told to stop before it started,
  and 2 on a usage error.

Stdlib only, with no side effects on import: ``cca_worker.process`` reuses its helpers.
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` imports enum, a third of the shim's start
import ctypes
import os
import sys
import time

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
_WAKE_SIGNALS = _STOP_SIGNALS | {signal.SIGCHLD}
_CLEANUP_LIMIT_S = 10.0
_USAGE = "usage: reaper.py --grace SECONDS [--parent PID] -- ARGV..."


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
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def process_table() -> dict[int, tuple[int, int]]:
    """Map every visible pid to ``(ppid, start time in clock ticks)``, read from /proc."""
    table: dict[int, tuple[int, int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (stat := read_stat(int(name))) is not None:
            table[int(name)] = (stat[1], stat[2])
    return table


def read_stat(pid: int) -> tuple[str, int, int] | None:
    """Return ``(state, ppid, start time)`` of ``pid``, or None if it no longer exists."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
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


def _parse(args: list[str]) -> tuple[float, int | None, list[str]]:
    grace, parent = 5.0, None
    while args and args[0] != "--":
        if len(args) < 2 or args[0] not in ("--grace", "--parent"):
            raise ValueError(f"unexpected argument {args[0]!r}")
        if args[0] == "--grace":
            grace = float(args[1])
        else:
            parent = int(args[1])
        args = args[2:]
    if len(args) < 2:
        raise ValueError("no command after '--'")
    return grace, parent, args[1:]


def _initial_environ() -> dict[bytes, bytes]:
    # os.environ may already hold LC_CTYPE from Python's C-locale coercion, which -I cannot
    # turn off; /proc keeps the environment exactly as it was passed to execve.
    with open("/proc/self/environ", "rb") as f:
        items = f.read().split(b"\0")
    return {k: v for k, sep, v in (item.partition(b"=") for item in items) if sep and k}


def _start(argv: list[str], env: dict[bytes, bytes]) -> int:
    shim = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    try:
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; exec keeps that
            signal.signal(sig, signal.SIG_DFL)
        set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != shim:
            os._exit(128 + signal.SIGKILL)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        os.execvpe(argv[0], argv, env)
    except BaseException as exc:  # the forked child must never return into the shim's code
        os.write(2, f"cca-reaper: cannot run {argv[0]!r}: {exc}\n".encode(errors="replace"))
    os._exit(127)


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


def _kill_descendants(limit_s: float) -> int:
    """SIGKILL and reap every descendant; return how many were still alive at ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while (found := descendants(os.getpid())) and time.monotonic() < deadline:
        for pid in found:
            try:  # noqa: SIM105 - contextlib costs the shim's start time
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap(-1)
        # Killed grandchildren re-parent to us before they can be reaped: wait for that.
        signal.sigtimedwait({signal.SIGCHLD}, 0.01)
    return len(found)


def main(args: list[str]) -> int:
    """Run the shim; return its exit code."""
    try:
        grace_s, parent, argv = _parse(args)
    except ValueError as exc:
        print(f"cca-reaper: {exc}\n{_USAGE}", file=sys.stderr)
        return 2
    signal.pthread_sigmask(signal.SIG_BLOCK, _WAKE_SIGNALS)
    make_subreaper()
    set_parent_death_signal(signal.SIGTERM)
    orphaned = parent is not None and os.getppid() != parent
    if orphaned or _STOP_SIGNALS & signal.sigpending():
        return 128 + signal.SIGTERM
    status = _supervise(_start(argv, _initial_environ()), grace_s)
    if survivors := _kill_descendants(_CLEANUP_LIMIT_S):
        print(f"cca-reaper: {survivors} descendants did not die", file=sys.stderr)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

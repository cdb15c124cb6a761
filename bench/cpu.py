"""CPU time spent by the benchmark's own process trees: this process and everything it
started (gunicorn, Celery workers, agents, Redis), plus the Postgres server's processes.
Read from /proc, so other work on the machine does not count; how much of that there was is
reported too."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


def tree_seconds(roots: Sequence[int]) -> float:
    """CPU seconds of ``roots`` and all their descendants, including the children each has
    already reaped (utime + stime + cutime + cstime)."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2:].split()
        parents[int(name)] = int(fields[1])
        times[int(name)] = sum(int(value) for value in fields[11:15])
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    todo = [pid for pid in roots if pid in times]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, ()))
    return sum(times[pid] for pid in seen) / _TICKS


def machine_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (all CPUs, /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(value) for value in f.readline().split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / _TICKS


def own_seconds() -> float:
    """CPU seconds used by this process so far (all its threads, no children)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuSpent:
    seconds: float = 0.0  # every process of the benchmark, servers included
    own_seconds: float = 0.0  # this process only (the benchmark's clients)
    machine_seconds: float = 0.0  # every process on the machine
    wall_seconds: float = 0.0

    @property
    def foreign_share(self) -> float:
        """The share of the machine's CPU capacity used by processes not the benchmark's."""
        capacity = self.wall_seconds * (os.cpu_count() or 1)
        return max(0.0, self.machine_seconds - self.seconds) / capacity if capacity else 0.0


@contextmanager
def cpu_spent(roots: Sequence[int]) -> Iterator[CpuSpent]:
    """Measure the CPU seconds the trees under ``roots`` spend in the block (resolution: one
    clock tick per process)."""
    spent = CpuSpent()
    before, own_before, machine_before = tree_seconds(roots), own_seconds(), machine_seconds()
    started = time.monotonic()
    try:
        yield spent
    finally:
        spent.seconds = tree_seconds(roots) - before
        spent.own_seconds = own_seconds() - own_before
        spent.machine_seconds = machine_seconds() - machine_before
        spent.wall_seconds = time.monotonic() - started

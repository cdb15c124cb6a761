"""The stand-in for ``claude``: a bash script that records its own start time in
``./started`` (its working directory is the task's), and in the FIFO its environment names
in ``BENCH_STARTS`` if any (with its working directory), then prints a minimal successful
stream-json run: ``init``, then (after an optional model turn, ``sleep``) ``result``. Bash
starts in about a millisecond, where a Python stand-in took 8 ms, so the benchmark measures
the fleet rather than the stand-in's interpreter. Also measures what starting it costs,
directly and through cca's reaper shim.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path

from bench.waiting import BenchError
from cca_worker.agent import EOF, spawn

STAMP = "started"
# The run the stand-in prints, one stream-json line each.
EVENTS = [
    {"type": "system", "subtype": "init", "session_id": "s"},
    {"type": "result", "subtype": "success", "is_error": False, "result": "ok", "num_turns": 1,
     "total_cost_usd": 0, "usage": {"input_tokens": 1, "output_tokens": 1}, "session_id": "s"},
]
# $EPOCHREALTIME (bash >= 5) is the time in microseconds; the newline marks a whole stamp.
_SCRIPT = """#!/bin/bash
started=$EPOCHREALTIME
printf '%s\\n' "$started" > {stamp}
[ -z "$BENCH_STARTS" ] || printf '%s %s\\n' "$started" "$PWD" > "$BENCH_STARTS"
printf '%s\\n' '{init}'
{turn}printf '%s\\n' '{result}'
"""


def install(root: Path, turn_s: float = 0.0) -> Path:
    """Write the executable stand-in into ``root``; return its path. With ``turn_s`` it waits
    that long (an external ``sleep``) between its two events, as claude waits for the model."""
    path = root / (f"claude-standin-{turn_s * 1000:g}ms" if turn_s else "claude-standin")
    turn = f"sleep {turn_s:g}\n" if turn_s else ""
    init, result = (json.dumps(event, separators=(",", ":")) for event in EVENTS)
    path.write_text(_SCRIPT.format(stamp=STAMP, turn=turn, init=init, result=result))
    path.chmod(0o755)
    return path


def read_stamp(workdir: Path) -> float | None:
    """The start time the stand-in recorded in ``workdir``, or None if it has not yet."""
    try:
        text = (workdir / STAMP).read_text()
    except FileNotFoundError:
        return None
    return float(text.replace(",", ".")) if text.endswith("\n") else None  # any locale


class Starts:
    """The FIFO the stand-in writes its start to when ``BENCH_STARTS`` names it: waiting on
    it, the benchmark sleeps until the start is written (as BLPOP does for the baseline)
    instead of polling for ``./started`` and taking CPU from what it measures."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # never sees end of file
        self._buffer = b""

    def wait(self, workdir: Path, timeout_s: float) -> float:
        """The start time of the stand-in running in ``workdir``. Raises BenchError after
        ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                stamp, _, cwd = line.decode().partition(" ")
                if cwd == str(workdir):
                    return float(stamp.replace(",", "."))  # any locale
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._fd], [], [], left)[0]:
                raise BenchError(f"no stand-in started in {workdir} within {timeout_s:g}s")
            self._buffer += os.read(self._fd, 1 << 16)

    def close(self) -> None:
        os.close(self._fd)
        self.path.unlink()


def start_latency_direct(standin: Path, workdir: Path) -> float:
    """Seconds from just before ``Popen`` to the stand-in's recorded start."""
    workdir.mkdir(parents=True)
    before = time.time()
    subprocess.run([str(standin)], cwd=workdir, stdin=subprocess.DEVNULL,
                   capture_output=True, check=True)
    return _stamp(workdir) - before


def start_latency_reaper(standin: Path, workdir: Path) -> float:
    """Seconds from just before cca's ``spawn`` (reaper shim, new session) to the stand-in's
    recorded start; reads its output to the end like the worker does."""
    workdir.mkdir(parents=True)
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    before = time.time()
    with spawn([str(standin)], env=env, cwd=str(workdir), grace_s=3.0) as proc:
        while proc.read_line(5.0) is not EOF:
            pass
    return _stamp(workdir) - before


def _stamp(workdir: Path) -> float:
    stamp = read_stamp(workdir)
    if stamp is None:
        raise BenchError(f"the stand-in recorded no start time in {workdir}")
    return stamp

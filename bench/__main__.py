"""``python -m bench [--quick] [--only a,b,c] [--keep]``: run the benchmark, print the table."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

from bench import (
    burst,
    code_search,
    dashboard,
    events,
    latency,
    live,
    overshoot,
    realruns,
    scale,
    submissions,
    throughput,
    window,
    workflows,
)
from bench.cpu import cpu_spent
from bench.plan import DEFAULT, QUICK, Counts
from bench.report import Section, format_table
from bench.servers import Bench, open_bench
from bench.waiting import BenchError

MEASURES: dict[str, Callable[[Bench, Counts], Section]] = {
    "a": submissions.measure, "b": latency.measure, "c": throughput.measure,
    "d": realruns.measure, "e": workflows.measure, "f": code_search.measure,
    "g": overshoot.measure, "h": window.measure, "i": live.measure,
    "j": dashboard.measure, "k": scale.measure, "l": burst.measure,
    "m": events.measure,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts (CI smoke, < 1 min)")
    parser.add_argument("--only", default="a,b,c,d,e,f,g,h,i,j,k,l,m", help="measurements to run, e.g. a,c")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    args.only = [key.strip() for key in args.only.split(",") if key.strip()]
    if unknown := set(args.only) - set(MEASURES):
        parser.error(f"unknown measurement(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run; return 0 on success (whatever the numbers), 1 on a failure, 130 on Ctrl-C."""
    args = parse_args(argv)
    counts = QUICK if args.quick else DEFAULT
    signal.signal(signal.SIGTERM, _interrupt)
    sections: list[Section] = []
    began = time.monotonic()
    try:
        with open_bench(keep=args.keep) as bench:
            _progress(f"servers up in {bench.root} ({time.monotonic() - began:.1f}s)")
            with cpu_spent(bench.cpu_roots) as cpu:
                for key in args.only:
                    _progress(f"measuring ({key})")
                    sections.append(MEASURES[key](bench, counts))
    except KeyboardInterrupt:
        _progress("interrupted; every process it started is stopped")
        return 130
    except BenchError as exc:
        _progress(f"failed: {exc}")
        return 1
    print(format_table([row for section in sections for row in section.rows]))
    print()
    for section in sections:
        print("\n".join(section.notes))
    print(f"\n{'quick' if args.quick else 'default'} run, {time.monotonic() - began:.0f}s; "
          f"{os.cpu_count()} CPUs; other processes used {cpu.foreign_share:.0%} of the "
          f"machine's CPU meanwhile (they slow rates and latencies; the CPU-per-unit numbers "
          f"count only the benchmark's processes)")
    return 0


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())

"""``python -m bench.bridge_start [--runs N] [--busy K]``: how long `cca-mcp` takes to answer.

Times what `claude` waits for before its first turn: from spawning the stdio bridge to its
answer to ``tools/list`` (after ``initialize``). In print mode the CLI does not wait for MCP
servers unless ``MCP_CONNECTION_NONBLOCKING=0``, and then waits up to
``MCP_CONNECT_TIMEOUT_MS`` (5000 ms unless set; cca's agents get both, and 30000), so the
figures to compare are the p50 and the maximum under load against that wait. ``--busy``
starts K spinning processes for the run, as a loaded worker host would have.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

CLI_DEFAULT_WAIT_MS = 5000
CCA_AGENT_WAIT_MS = 30000
REQUESTS = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
]


def time_one_start() -> float:
    """Seconds from spawn to the bridge's tools/list answer."""
    env = {**os.environ, "CCA_TASK_ID": "00000000-0000-0000-0000-000000000000"}
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "cca_mcp", "--daemon-url", "http://127.0.0.1:9"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=env, text=True)
    assert proc.stdin and proc.stdout
    proc.stdin.write("".join(json.dumps(request) + "\n" for request in REQUESTS))
    proc.stdin.flush()
    for line in proc.stdout:
        if json.loads(line).get("id") == 2:
            break
    elapsed = time.perf_counter() - began
    proc.stdin.close()
    proc.wait(10)
    return elapsed


def _spin() -> None:
    while True:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bridge_start", description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--busy", type=int, default=0, help="spinning processes meanwhile")
    args = parser.parse_args(argv)
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for spinner in spinners:
        spinner.start()
    try:
        times_ms = sorted(time_one_start() * 1000 for _ in range(args.runs))
    finally:
        for spinner in spinners:
            spinner.terminate()
    print(f"cca-mcp start to tools/list, {args.runs} runs, {args.busy} busy loops: "
          f"p50 {statistics.median(times_ms):.0f} ms, max {times_ms[-1]:.0f} ms; "
          f"max / CLI default wait {times_ms[-1] / CLI_DEFAULT_WAIT_MS:.2f}, "
          f"max / cca agents' wait {times_ms[-1] / CCA_AGENT_WAIT_MS:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

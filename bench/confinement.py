"""``python -m bench.confinement [--runs N]``: what bubblewrap adds to a real agent run.

Runs the real ``claude -p`` against the scripted Messages API (one turn: a Bash tool call,
then text), bare and under :func:`cca_worker.confinement.confine`, in turn (A B A B …, so drift
hits both), and prints each side's p50 and max wall time and the ratio confined/bare per pair.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cca_worker.confinement import View, agent_tools, confine, find_bwrap
from tests.fakes.model_api import ModelAPI

REPO = Path(__file__).resolve().parent.parent
CLAUDE = str(REPO / ".cache/claude-cli/node_modules/.bin/claude")
SCRIPT = {"steps": [{"tool_use": {"name": "Bash", "input": {"command": "git --version"}}},
                    {"text": "done"}]}


def one_run(argv: list[str], env: dict[str, str], workdir: Path) -> float:
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=workdir, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - began
    if '"subtype":"success"' not in done.stdout.replace(" ", ""):
        raise SystemExit(f"the run failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.confinement", description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    bwrap = find_bwrap()
    with ModelAPI() as api, tempfile.TemporaryDirectory() as root:
        workdir, home = Path(root, "work"), Path(root, "home")
        (home / ".claude").mkdir(parents=True)
        workdir.mkdir()
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": api.url,
               "ANTHROPIC_API_KEY": "bench", "CLAUDE_CONFIG_DIR": str(home / ".claude"),
               "DISABLE_TELEMETRY": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
        bare = [CLAUDE, "-p", "--output-format", "stream-json", "--verbose",
                "--permission-mode", "dontAsk", "--allowedTools", "Bash(git *)", "--",
                f"[[script:{json.dumps(SCRIPT)}]]"]
        view = View(workdir, home, agent_tools(CLAUDE, sys.executable))
        confined = confine(bwrap, bare, view, path=env["PATH"])
        one_run(bare, env, workdir)  # warm-up: the page cache, the CLI's first start
        times: dict[str, list[float]] = {"bare": [], "confined": []}
        for _ in range(args.runs):
            times["bare"].append(one_run(bare, env, workdir))
            times["confined"].append(one_run(confined, env, workdir))
    ratios = [c / b for b, c in zip(times["bare"], times["confined"], strict=True)]
    for name, values in times.items():
        print(f"{name:>9}: p50 {statistics.median(values) * 1000:.0f} ms, "
              f"max {max(values) * 1000:.0f} ms over {len(values)} runs")
    print(f"confined/bare per pair: p50 {statistics.median(ratios):.3f}, "
          f"min {min(ratios):.3f}, max {max(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

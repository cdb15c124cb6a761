"""Record the stream-json transcripts of ``tests/data/transcripts`` from the real CLI.

``python -m tests.fakes.record_transcripts [--out DIR] [--claude PATH]`` runs the pinned
``claude`` (``.cache/claude-cli``) once per transcript against the scripted Messages API
(:mod:`tests.fakes.model_api`) in a fresh HOME and keeps its stdout. Session ids and uuids
change from one recording to the next; the events, usage and results do not. Re-record after
pinning a new CLI and run the unit tests of the worker: they read these files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.fakes.model_api import ModelAPI

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "data" / "transcripts"
CLAUDE = REPO / ".cache" / "claude-cli" / "node_modules" / ".bin" / "claude"
PROMPT_TIMEOUT_S = 120

# name -> (steps of the scripted model, extra CLI flags)
RECORDINGS: dict[str, tuple[list[dict[str, Any]], list[str]]] = {
    "tool_success": ([
        {"text": "running it", "tool_use": {"name": "Bash", "input": {"command": "echo recorded-marker"}},
         "usage": {"input_tokens": 1000, "output_tokens": 50, "cache_read_input_tokens": 300,
                   "cache_creation_input_tokens": 40}},
        {"text": "saw: {tool_result}", "usage": {"input_tokens": 1200, "output_tokens": 70}},
    ], ["--allowedTools=Bash(echo *)"]),
    "denied": ([
        {"tool_use": {"name": "Bash", "input": {"command": "touch denied.txt"}}},
        {"text": "could not"},
    ], []),
    "max_turns": ([
        {"tool_use": {"name": "Bash", "input": {"command": "echo one"}}},
        {"text": "never reached"},
    ], ["--allowedTools=Bash(echo *)", "--max-turns=1"]),
    "rate_limited": ([{"error": 429}], []),
}


def record(name: str, claude: str, api_url: str, workdir: Path) -> str:
    steps, flags = RECORDINGS[name]
    prompt = "[[script:" + json.dumps({"steps": steps}) + "]]"
    home = workdir / f"home-{name}"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": api_url,
           "ANTHROPIC_API_KEY": "test", "DISABLE_TELEMETRY": "1",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "CLAUDE_CODE_MAX_RETRIES": "0"}
    argv = [claude, "-p", prompt, "--output-format=stream-json", "--verbose",
            "--include-partial-messages", "--permission-mode=dontAsk", *flags]
    done = subprocess.run(argv, env=env, cwd=workdir, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=PROMPT_TIMEOUT_S, check=False)
    if '"type":"result"' not in done.stdout:
        raise SystemExit(f"{name}: no result line (exit {done.returncode}): {done.stderr[-500:]}")
    return done.stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.record_transcripts",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--claude", default=str(CLAUDE))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with ModelAPI() as api, tempfile.TemporaryDirectory(prefix="rec-") as tmp:
        for name in RECORDINGS:
            (args.out / f"{name}.jsonl").write_text(record(name, args.claude, api.url, Path(tmp)))
            print(f"recorded {name}")


if __name__ == "__main__":
    main()

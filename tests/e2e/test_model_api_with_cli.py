"""The scripted Messages API (tests/fakes/model_api.py) driven by the real Claude Code CLI.

The CLI is run as in the CLI notes §10.3: fresh HOME per test, no retries unless a test wants them,
stdin /dev/null, the prompt right after ``-p``, ``--output-format stream-json --verbose``.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fakes.model_api import ModelAPI  # noqa: E402

MOCK_SCRIPT = REPO / "tests" / "fakes" / "model_api.py"
Events = list[dict[str, Any]]


@pytest.fixture(scope="session")
def claude_bin() -> str:
    """Path of the real CLI; a missing CLI is a failure, not a skip."""
    path = os.environ.get("CLAUDE_BIN") or str(REPO / ".cache/claude-cli/node_modules/.bin/claude")
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"Claude Code CLI not found at {path}: run .ci/run (or install it as in "
            "notes/claude-cli.md §10.1 into .cache/claude-cli), or set CLAUDE_BIN"
        )
    return path


@pytest.fixture
def api() -> Iterator[ModelAPI]:
    """An in-process scripted API."""
    with ModelAPI() as server:
        yield server


def script(*steps: dict[str, Any]) -> str:
    """The prompt marker selecting ``steps``."""
    return "[[script:" + json.dumps({"steps": list(steps)}) + "]]"


def cli_env(url: str, tmp_path: Path, extra: dict[str, str | None] | None = None) -> dict[str, str]:
    """A minimal environment for the CLI (a value of None removes a default)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env: dict[str, str | None] = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "test",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        **(extra or {}),
    }
    return {k: v for k, v in env.items() if v is not None}


def cli_argv(claude_bin: str, prompt: str, *args: str) -> list[str]:
    return [claude_bin, "-p", prompt, "--output-format", "stream-json", "--verbose", *args]


def run_claude(
    claude_bin: str,
    url: str,
    tmp_path: Path,
    prompt: str,
    *args: str,
    env: dict[str, str | None] | None = None,
    timeout: float = 60,
) -> tuple[int, Events]:
    """Run the CLI to completion; returns (exit code, parsed stream-json events)."""
    r = subprocess.run(
        cli_argv(claude_bin, prompt, *args),
        cwd=tmp_path,
        env=cli_env(url, tmp_path, env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert events and events[0].get("subtype") == "init", f"rc={r.returncode} stderr={r.stderr!r}"
    return r.returncode, events


def of_type(events: Events, type_: str, subtype: str | None = None) -> Events:
    return [
        e for e in events if e["type"] == type_ and (subtype is None or e.get("subtype") == subtype)
    ]


def model_usage(result: dict[str, Any]) -> dict[str, Any]:
    (usage,) = result["modelUsage"].values()
    assert isinstance(usage, dict)
    return usage


# -- 1. text reply and usage -----------------------------------------------------------------------

USAGE = {
    "input_tokens": 111,
    "output_tokens": 22,
    "cache_read_input_tokens": 1000,
    "cache_creation_input_tokens": 200,
}


def opus_cost(inp: int, out: int, cache_read: int, cache_write: int) -> float:
    """CLI price of claude-opus-4-8 (notes §1.3): $5/$25 per M; cache read 0.1x, write 1.25x."""
    return (inp * 5 + out * 25 + cache_read * 0.5 + cache_write * 6.25) / 1e6


def test_text_reply_reports_scripted_usage(claude_bin: str, api: ModelAPI, tmp_path: Path) -> None:
    rc, ev = run_claude(
        claude_bin, api.url, tmp_path, script({"text": "hello there", "usage": USAGE})
    )
    res = ev[-1]
    assert rc == 0 and res["subtype"] == "success" and not res["is_error"]
    assert res["result"] == "hello there" and res["num_turns"] == 1
    (line,) = of_type(ev, "assistant")
    assert line["message"]["id"].startswith("msg_scripted_")
    assert line["message"]["model"] == "claude-opus-4-8" == api.requests[0]["model"]
    assert line["message"]["content"] == [{"type": "text", "text": "hello there"}]
    # assistant lines carry the message_start usage: real input/cache, output_tokens placeholder 1
    assert line["message"]["usage"] == {**USAGE, "output_tokens": 1}
    for key in USAGE:
        assert res["usage"][key] == USAGE[key]
    mu = model_usage(res)
    assert (mu["inputTokens"], mu["outputTokens"]) == (111, 22)
    assert (mu["cacheReadInputTokens"], mu["cacheCreationInputTokens"]) == (1000, 200)
    assert res["total_cost_usd"] == pytest.approx(opus_cost(111, 22, 1000, 200))
    # with CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 there is no side request at all
    (rec,) = api.records
    assert (
        rec["main"]
        and rec["step"] == 0
        and rec["has_tools"]
        and rec["stream"]
        and rec["reply"] == "text"
    )
    assert rec["path"] == "/v1/messages?beta=true" and rec["messages"] == 2


def test_title_side_request_counts_in_model_usage_only(
    claude_bin: str, api: ModelAPI, tmp_path: Path
) -> None:
    """Without CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC the CLI first asks for a session title.

    That request has ``tools: []``, a JSON-schema output format and the prompt (marker included)
    inside ``<session>`` tags; it gets the default usage (100 in / 20 out) and is counted in
    ``modelUsage`` and ``total_cost_usd`` but not in ``result.usage``.
    """
    rc, ev = run_claude(
        claude_bin,
        api.url,
        tmp_path,
        script({"text": "hello there", "usage": USAGE}),
        env={"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": None},
    )
    res = ev[-1]
    assert rc == 0 and res["result"] == "hello there"
    side, main = api.records
    assert not side["main"] and side["step"] is None and not side["has_tools"]
    assert side["body"]["tools"] == [] and "[[script:" in json.dumps(side["body"]["messages"][0])
    assert side["body"]["output_config"]["format"]["type"] == "json_schema"
    assert main["main"] and main["step"] == 0
    assert (res["usage"]["input_tokens"], res["usage"]["output_tokens"]) == (111, 22)
    mu = model_usage(res)
    assert (mu["inputTokens"], mu["outputTokens"]) == (111 + 100, 22 + 20)
    assert res["total_cost_usd"] == pytest.approx(opus_cost(211, 42, 1000, 200))


# -- 2. Bash tool call, result fed back (server run as a script with --log) ------------------------


@pytest.fixture
def api_process(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The API as a separate process (``--port 0 --log``), as in notes §10.3."""
    log = tmp_path / "requests.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(MOCK_SCRIPT), "--port", "0", "--log", str(log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("listening on http://127.0.0.1:"), line
    yield line.split()[-1], log
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 0


def test_bash_tool_result_reaches_next_step(
    claude_bin: str, api_process: tuple[str, Path], tmp_path: Path
) -> None:
    url, log = api_process
    rc, ev = run_claude(
        claude_bin,
        url,
        tmp_path,
        script(
            {
                "tool_use": {
                    "name": "Bash",
                    "input": {"command": "echo hi-from-test", "description": "echo"},
                }
            },
            {"text": "saw: {tool_result}"},
        ),
        "--allowedTools",
        "Bash(echo *)",
    )
    res = ev[-1]
    assert rc == 0 and not res["is_error"] and res["result"] == "saw: hi-from-test"
    assert res["num_turns"] == 2 and res["permission_denials"] == []
    call, answer = of_type(ev, "assistant")
    (tool_use,) = call["message"]["content"]
    assert (
        tool_use["type"] == "tool_use"
        and tool_use["name"] == "Bash"
        and tool_use["id"].startswith("toolu_")
    )
    (user,) = of_type(ev, "user")
    (block,) = user["message"]["content"]
    assert block["tool_use_id"] == tool_use["id"] and block["content"] == "hi-from-test"
    assert user["tool_use_result"]["stdout"] == "hi-from-test"
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["main"], r["step"], r["reply"], r["messages"]) for r in recs] == [
        (True, 0, "tool_use", 2),
        (True, 1, "text", 4),
    ]
    assert {"time", "path", "model", "stream", "has_tools", "body"} <= recs[0].keys()
    sent = recs[1]["body"]["messages"]
    assert sent[-2]["role"] == "assistant" and sent[-2]["content"][0]["id"] == tool_use["id"]
    assert sent[-1]["content"][0]["type"] == "tool_result"
    assert call["message"]["id"] != answer["message"]["id"]


# -- 3. text + tool_use in one message -------------------------------------------------------------


def test_text_and_tool_use_in_one_message(claude_bin: str, api: ModelAPI, tmp_path: Path) -> None:
    usage = {"input_tokens": 150, "output_tokens": 50}
    rc, ev = run_claude(
        claude_bin,
        api.url,
        tmp_path,
        script(
            {
                "text": "let me check",
                "tool_use": {"name": "Bash", "input": {"command": "echo two-blocks"}},
                "usage": usage,
            },
            {"text": "got {tool_result}"},
        ),
        "--allowedTools",
        "Bash(echo *)",
    )
    assert rc == 0 and ev[-1]["result"] == "got two-blocks"
    first, second, last = of_type(ev, "assistant")
    assert first["message"]["id"] == second["message"]["id"] != last["message"]["id"]
    assert [first["message"]["content"][0]["type"], second["message"]["content"][0]["type"]] == [
        "text",
        "tool_use",
    ]
    assert first["message"]["usage"] == second["message"]["usage"]
    assert first["message"]["usage"]["input_tokens"] == 150
    # the CLI sends both blocks back as ONE assistant message, so step counting stays right
    assistants = [m for m in api.requests[1]["messages"] if m["role"] == "assistant"]
    assert len(assistants) == 1 and [b["type"] for b in assistants[0]["content"]] == [
        "text",
        "tool_use",
    ]
    assert [r["step"] for r in api.records] == [0, 1]


# -- 4. HTTP errors and retries --------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 429, 500, 529])
def test_http_error_without_retries(
    claude_bin: str, api: ModelAPI, tmp_path: Path, status: int
) -> None:
    rc, ev = run_claude(claude_bin, api.url, tmp_path, script({"error": status}))
    res = ev[-1]
    assert rc == 1 and res["subtype"] == "success" and res["is_error"] is True
    assert res["api_error_status"] == status and res["total_cost_usd"] == 0
    synthetic = of_type(ev, "assistant")
    assert synthetic and synthetic[0]["message"]["model"] == "<synthetic>"
    assert of_type(ev, "system", "api_retry") == []
    assert len(api.requests) == 1
    if status == 429:
        assert "scripted rate_limit_error" in res["result"] and "429" in res["result"]


def test_overloaded_then_recovered_with_retries(
    claude_bin: str, api: ModelAPI, tmp_path: Path
) -> None:
    rc, ev = run_claude(
        claude_bin,
        api.url,
        tmp_path,
        script({"error": 529, "times": 1, "then": {"text": "recovered"}}),
        env={"CLAUDE_CODE_MAX_RETRIES": "2"},
    )
    res = ev[-1]
    assert rc == 0 and not res["is_error"] and res["result"] == "recovered"
    (retry,) = of_type(ev, "system", "api_retry")
    assert (retry["attempt"], retry["max_retries"], retry["error_status"], retry["error"]) == (
        1,
        2,
        529,
        "overloaded",
    )
    assert [(r["step"], r["reply"]) for r in api.records] == [(0, "error"), (0, "text")]


def test_a_rate_limit_resetting_after_more_than_a_minute_ends_the_run_without_its_reset(
    claude_bin: str, api: ModelAPI, tmp_path: Path
) -> None:
    # Measured for issue 16: the CLI waits out a retry-after of up to 60 s (59 s: one retry
    # after 59.0 s); above that it gives up at once, and no event carries the reset time
    # (nor the anthropic-ratelimit-*-reset headers): the fleet must read them itself.
    reset = "2030-01-01T00:00:00Z"
    headers = {"retry-after": "61", "anthropic-ratelimit-requests-remaining": "0",
               "anthropic-ratelimit-requests-reset": reset, "anthropic-ratelimit-tokens-reset": reset}
    rc, ev = run_claude(claude_bin, api.url, tmp_path,
                        script({"error": 429, "headers": headers, "times": 1, "then": {"text": "ok"}}),
                        env={"CLAUDE_CODE_MAX_RETRIES": "3"})
    res = ev[-1]
    assert rc == 1 and res["is_error"] and res["api_error_status"] == 429
    assert of_type(ev, "system", "api_retry") == [] and len(api.records) == 1
    after_init = [json.dumps(event) for event in ev[1:]]
    assert not [line for line in after_init if "2030" in line or "reset" in line.lower()]


# -- 5. stalled stream -----------------------------------------------------------------------------


def test_stall_keeps_cli_silent_and_server_stops_promptly(claude_bin: str, tmp_path: Path) -> None:
    api = ModelAPI()
    url = api.start()
    proc = subprocess.Popen(
        cli_argv(claude_bin, script({"stall": 60})),
        cwd=tmp_path,
        env=cli_env(url, tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    assert stdout is not None

    def read() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while True:
            event = json.loads(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            if event.get("subtype") == "init":
                break
        with pytest.raises(queue.Empty):
            lines.get(timeout=3)
        assert proc.poll() is None
        assert [(r["main"], r["reply"], r["stream"]) for r in api.records] == [
            (True, "stall", True)
        ]
    finally:
        proc.kill()
        proc.wait(5)
        started = time.monotonic()
        api.stop()
        assert time.monotonic() - started < 2


def test_dropped_stream_falls_back_to_non_streaming(
    claude_bin: str, api: ModelAPI, tmp_path: Path
) -> None:
    """A stream closed after ``message_start`` makes the CLI re-send at once without streaming
    (even with CLAUDE_CODE_MAX_RETRIES=0); ``times``/``then`` lets that fallback succeed."""
    rc, ev = run_claude(
        claude_bin,
        api.url,
        tmp_path,
        script(
            {
                "stall": 1,
                "times": 1,
                "then": {"text": "fallback ok", "usage": {"input_tokens": 70, "output_tokens": 9}},
            }
        ),
    )
    res = ev[-1]
    assert rc == 0 and not res["is_error"] and res["result"] == "fallback ok"
    assert [(r["step"], r["stream"], r["reply"]) for r in api.records] == [
        (0, True, "stall"),
        (0, False, "text"),
    ]
    (line,) = of_type(ev, "assistant")
    assert (
        line["message"]["stop_reason"] == "end_turn"
        and line["message"]["usage"]["output_tokens"] == 9
    )
    mu = model_usage(
        res
    )  # measured: result.usage is all zeros after this fallback; modelUsage is right
    assert (mu["inputTokens"], mu["outputTokens"]) == (70, 9)
    assert res["total_cost_usd"] == pytest.approx(opus_cost(70, 9, 0, 0))


# -- 6. partial messages ---------------------------------------------------------------------------


def test_partial_messages_carry_scripted_output_tokens(
    claude_bin: str, api: ModelAPI, tmp_path: Path
) -> None:
    text = "a reply long enough to be streamed in several text_delta events, " * 2
    rc, ev = run_claude(
        claude_bin,
        api.url,
        tmp_path,
        script({"text": text, "usage": {"input_tokens": 120, "output_tokens": 33}}),
        "--include-partial-messages",
    )
    assert rc == 0 and ev[-1]["result"] == text
    raw = [e["event"] for e in of_type(ev, "stream_event")]
    kinds = [e["type"] for e in raw]
    assert kinds[0] == "message_start" and kinds[1] == "content_block_start"
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert kinds.count("content_block_delta") == len(raw) - 5 > 1
    start = raw[0]["message"]
    assert start["id"].startswith("msg_scripted_") and start["usage"]["output_tokens"] == 1
    assert start["usage"]["input_tokens"] == 120
    assert "".join(e["delta"]["text"] for e in raw if e["type"] == "content_block_delta") == text
    (delta,) = [e for e in raw if e["type"] == "message_delta"]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == 33 and delta["usage"]["input_tokens"] == 120
    assert of_type(ev, "system", "status")


# -- the API on its own (paths the CLI takes rarely or only after minutes) --


def post(url: str, body: dict[str, Any]) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(
        url + "/v1/messages?beta=true",
        json.dumps(body).encode(),
        {"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_direct_non_streaming_side_and_delay(api: ModelAPI) -> None:
    tools = [{"name": "Bash", "input_schema": {"type": "object"}}]
    marker = script(
        {"tool_use": {"name": "Bash", "input": {"command": "ls"}}, "usage": {"output_tokens": 7}},
        {"error": 429, "retry_after": 3},
        {"text": "slow", "delay": 0.1},
    )
    first = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>x</system-reminder>"},
                {"type": "text", "text": marker},
            ],
        }
    ]
    status, raw, headers = post(
        api.url, {"model": "m1", "messages": first, "tools": tools, "stream": False}
    )
    msg = json.loads(raw)
    assert status == 200 and msg["model"] == "m1" and msg["stop_reason"] == "tool_use"
    assert msg["content"][0]["input"] == {"command": "ls"} and msg["usage"]["output_tokens"] == 7
    turn2 = [
        *first,
        {"role": "assistant", "content": msg["content"]},
        {"role": "user", "content": "r"},
    ]
    status, raw, headers = post(api.url, {"model": "m1", "messages": turn2, "tools": tools})
    assert status == 429 and json.loads(raw)["error"]["type"] == "rate_limit_error"
    assert headers["retry-after"] == "3"
    turn3 = [*turn2, {"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]
    started = time.monotonic()
    status, raw, headers = post(
        api.url, {"model": "m1", "messages": turn3, "tools": tools, "stream": True}
    )
    assert status == 200 and time.monotonic() - started >= 0.5  # 6 events, 0.1 s between them
    assert b"event: message_stop" in raw and b'"text": "slow"' in raw
    status, raw, headers = post(
        api.url, {"model": "m1", "messages": [*turn3, *turn2[1:]], "tools": tools}
    )
    assert b'"text": "done"' in raw  # past the end of the script
    status, raw, headers = post(
        api.url, {"model": "m1", "messages": first, "tools": []}
    )  # side request
    assert json.loads(raw)["content"][0]["text"] == "Title"
    status, raw, headers = post(
        api.url, {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert json.loads(raw)["content"][0]["text"] == "ok"
    assert [r["step"] for r in api.records] == [0, 1, 2, 3, None, None]

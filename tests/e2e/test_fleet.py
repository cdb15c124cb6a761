"""The fleet end to end: the real API, real `cca worker` processes, the real `claude` CLI.

Every test submits through the Flask app on real Postgres and Redis, lets real workers run the
real CLI against the scripted Messages API (tests/fakes/model_api.py), and checks the task row
(``GET /api/v1/tasks/{id}``) and its events (``GET /api/v1/tasks/{id}/events``). After each test,
once its workers have stopped, no agent process of the test may be left (autouse fixture).
"""

from __future__ import annotations

import gzip
import json
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from cca_api import create_app
from cca_core.infra.db import make_engine
from tests.fakes.model_api import DEFAULT_USAGE
from tests.support.fleet import (
    FleetAPI,
    Sampler,
    agent_processes,
    bash,
    belongs_to,
    claude_processes,
    descendants,
    describe,
    live_processes,
    tool_processes,
    ts,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

# What the CLI 2.1.197 charges per million tokens (input, output); notes/claude-cli.md §1.3.
CLI_PRICES = {"claude-opus-4-8": (5.0, 25.0), "claude-haiku-4-5-20251001": (1.0, 5.0)}
TOOL_SLEEP = re.compile(r"\bsleep 3\d\b")
USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens",
                "cache_creation_input_tokens")


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def no_agent_left_behind(tmp_path: Path, claude_bin: str) -> Iterator[None]:
    """After the test and after its workers stopped: no claude, reaper or tool process of this
    test is alive. Set up before ``start_worker``, so torn down after it."""
    yield

    def leftovers() -> list[str]:
        return describe(proc for proc in live_processes() if belongs_to(proc, tmp_path)
                        and (claude_bin in proc.cmdline or TOOL_SLEEP.search(proc.cmdline)))

    # Stopping a worker is asynchronous below its main process (pool child -> reaper -> claude).
    deadline = time.monotonic() + 10
    while (left := leftovers()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == [], f"agent processes outlived the test: {left}"


@pytest.fixture
def fleet(make_settings: Callable[..., Any]) -> Callable[..., FleetAPI]:
    """``fleet(**sections)``: the real API app built with the given settings sections."""
    def build(**sections: dict[str, Any]) -> FleetAPI:
        return FleetAPI(create_app(make_settings(**sections)).test_client())

    return build


@pytest.fixture
def data_dir(config_data: dict[str, Any]) -> Path:
    return Path(config_data["embedded"]["data_dir"])


# -- helpers ------------------------------------------------------------------------------------

def attempt_events(events: list[dict[str, Any]], attempt: int) -> list[dict[str, Any]]:
    return [event for event in events if event["attempt"] == attempt]


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(event["type"], event["subtype"]) for event in events]


def index_of(events: list[dict[str, Any]], check: Callable[[dict[str, Any]], bool]) -> int:
    for n, event in enumerate(events):
        if check(event):
            return n
    raise AssertionError(f"no such event in {kinds(events)}")


def blocks(event: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    content = (event["data"].get("message") or {}).get("content") or []
    return [block for block in content if isinstance(block, dict) and block.get("type") == kind]


def assert_started_with_init(events: list[dict[str, Any]], task: dict[str, Any]) -> None:
    """Events are in id order, the run's first event is system/init with the run's session."""
    ids = [event["id"] for event in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    first = events[0]
    assert (first["type"], first["subtype"]) == ("system", "init"), kinds(events)
    assert first["data"]["session_id"] == task["session_id"]
    assert first["data"]["cwd"].endswith(f"/workspaces/{task['id']}")


def duration(task: dict[str, Any]) -> float:
    return ts(task["finished_at"]) - ts(task["started_at"])


def priced(usage: dict[str, int]) -> float:
    """What tokens of the default model cost ($5/$25 per MTok; cache 0.1x / 1.25x input)."""
    return (usage["input_tokens"] * 5 + usage["output_tokens"] * 25
            + usage["cache_read_input_tokens"] * 0.5
            + usage["cache_creation_input_tokens"] * 6.25) / 1e6


def main_requests(model_api: Any, marker: str = "") -> list[dict[str, Any]]:
    return [rec for rec in model_api.records if rec["main"]
            and (not marker or marker in str(rec["body"]["messages"][0]))]


# -- 0. a role's prompt reaches claude -------------------------------------------------------

def test_a_roles_prompt_file_reaches_the_models_system_prompt(fleet, start_worker, model_api):
    api = fleet()
    start_worker("w1")
    task = api.submit({"text": "planned"}, role="qa")
    done = api.wait_terminal(task["id"], timeout_s=60)
    assert done["status"] == "succeeded", done
    [request] = main_requests(model_api)
    system = json.dumps(request["body"]["system"])
    assert "# QA specialist" in system and "A test must be able to fail" in system


# -- 1. success with a tool call; exact usage and cost ------------------------------------------

def test_success_with_a_bash_tool_records_exact_usage_and_cost(fleet, start_worker, model_api):
    api = fleet()
    start_worker("w1")
    steps = [
        {**bash("echo e2e-marker"), "usage": {"input_tokens": 1000, "output_tokens": 50}},
        {"text": "saw: {tool_result}", "usage": {"input_tokens": 1200, "output_tokens": 70}},
    ]
    task = api.submit(*steps, allowed_tools=["Bash(echo *)"])
    done = api.wait_terminal(task["id"], timeout_s=60)

    # What the CLI was charged for, from the scripted API's request log: every request it made,
    # main ones with their step's usage and side ones (session title, ...) with the default.
    expected = dict.fromkeys(USAGE_FIELDS, 0)
    expected_cost = 0.0
    for rec in model_api.records:
        assert rec["reply"] in ("text", "tool_use"), rec["reply"]
        usage = {**DEFAULT_USAGE, **(steps[rec["step"]].get("usage", {}) if rec["main"] else {})}
        for name in USAGE_FIELDS:
            expected[name] += usage[name]
        price_in, price_out = CLI_PRICES[rec["model"]]
        expected_cost += (usage["input_tokens"] * price_in + usage["output_tokens"] * price_out) / 1e6
    assert [rec["step"] for rec in main_requests(model_api)] == [0, 1]
    assert expected["input_tokens"] >= 2200 and expected["output_tokens"] >= 120

    assert done["status"] == "succeeded", done
    assert done["error"] is None
    assert done["result"] == "saw: e2e-marker"
    assert done["usage"] == expected
    assert done["cost_usd"] == pytest.approx(expected_cost, abs=1e-9)
    assert done["num_turns"] == 2
    assert re.fullmatch(r"[0-9a-f-]{36}", done["session_id"] or "")
    assert done["permission_denials"] == []
    assert done["worker"] == "w1@test" and done["attempts"] == 1
    assert ts(done["created_at"]) <= ts(done["started_at"]) <= ts(done["finished_at"])

    events = api.events(task["id"])
    assert {event["attempt"] for event in events} == {1}
    assert_started_with_init(events, done)
    tool_use = index_of(events, lambda e: e["type"] == "assistant" and blocks(e, "tool_use"))
    (use,) = blocks(events[tool_use], "tool_use")
    assert use["name"] == "Bash" and use["input"]["command"] == "echo e2e-marker"
    tool_result = index_of(events, lambda e: e["type"] == "user" and blocks(e, "tool_result"))
    (res,) = blocks(events[tool_result], "tool_result")
    assert res["tool_use_id"] == use["id"] and not res["is_error"]
    assert res["content"] == "e2e-marker"
    result = events[-1]
    assert (result["type"], result["subtype"]) == ("result", "success")
    assert [e["type"] for e in events].count("result") == 1
    assert 0 < tool_use < tool_result < len(events) - 1
    # The row holds exactly what the CLI reported at the end.
    report = result["data"]
    assert report["is_error"] is False and report["result"] == "saw: e2e-marker"
    assert report["session_id"] == done["session_id"] and report["num_turns"] == 2
    assert report["total_cost_usd"] == pytest.approx(done["cost_usd"], abs=1e-9)
    model_usage = list(report["modelUsage"].values())
    assert sum(m["inputTokens"] for m in model_usage) == done["usage"]["input_tokens"]
    assert sum(m["outputTokens"] for m in model_usage) == done["usage"]["output_tokens"]


# -- 2. a permission denial ---------------------------------------------------------------------

def test_a_denied_tool_call_is_recorded_and_never_runs(fleet, start_worker, model_api, data_dir):
    api = fleet()
    start_worker("w1")
    task = api.submit(bash("touch denied.txt"), {"text": "after denial: {tool_result}"},
                      allowed_tools=["Bash(echo *)"])
    done = api.wait_terminal(task["id"], timeout_s=60)

    assert done["status"] == "succeeded", done
    assert done["error"] is None
    assert done["result"].startswith("after denial: ")
    denials = done["permission_denials"]
    assert len(denials) == 1, denials
    assert denials[0]["tool_name"] == "Bash"
    assert denials[0]["tool_input"]["command"] == "touch denied.txt"
    workspace = data_dir / "workspaces" / task["id"]
    assert workspace.is_dir()
    assert not (workspace / "denied.txt").exists()
    assert not list(data_dir.rglob("denied.txt"))

    events = api.events(task["id"])
    assert_started_with_init(events, done)
    denied = index_of(events, lambda e: e["type"] == "user" and blocks(e, "tool_result"))
    (res,) = blocks(events[denied], "tool_result")
    assert res["is_error"] is True and res["tool_use_id"] == denials[0]["tool_use_id"]
    assert "denied" in str(res["content"])
    assert events[-1]["type"] == "result" and events[-1]["data"]["permission_denials"]
    assert [rec["step"] for rec in main_requests(model_api)] == [0, 1]


# -- 3. token budget crossed mid-run ------------------------------------------------------------

def test_token_budget_crossed_mid_run_stops_the_agent(fleet, start_worker, model_api):
    api = fleet()
    start_worker("w1")
    task = api.submit(
        {**bash("echo never-runs"), "usage": {"input_tokens": 5000, "output_tokens": 10},
         "delay": 0.5},
        {"text": "too late", "delay": 2},
        allowed_tools=["Bash(echo *)"], token_budget=500, timeout_seconds=60)
    done = api.wait_terminal(task["id"], timeout_s=40)

    assert done["status"] == "budget_exceeded", done
    assert done["error"]["code"] == "token_budget_exceeded"
    assert "500" in done["error"]["message"]
    assert done["usage"]["input_tokens"] >= 5000
    assert done["cost_usd"] == pytest.approx(priced(done["usage"]), abs=1e-6)  # no result line
    assert done["cost_usd"] >= 5000 * 5 / 1e6
    assert done["result"] is None
    assert done["attempts"] == 1
    # Stopped at the first message's start, long before the 60 s timeout or the slow replies.
    assert duration(done) < 6, duration(done)

    events = api.events(task["id"])
    assert_started_with_init(events, done)
    starts = [e for e in events if e["type"] == "stream_event"
              and e["data"]["event"]["type"] == "message_start"]
    assert starts and starts[0]["data"]["event"]["message"]["usage"]["input_tokens"] == 5000
    assert not [e for e in events if e["type"] == "user" and blocks(e, "tool_result")]
    assert [rec["step"] for rec in main_requests(model_api)] == [0]


# -- 4. wall-clock timeout ----------------------------------------------------------------------

TOOL_TIMEOUT_S = 10


def test_timeout_stops_the_agent_and_kills_its_tool(fleet, start_worker, tmp_path):
    api = fleet()
    start_worker("w1")
    # On SIGTERM claude kills the tool but may carry on with the conversation (notes §2.3); a
    # slow next reply makes sure it never gets to finish it within the 2 s stop grace. The
    # timeout leaves room for the CLI's start, 2-4 s on two busy cores, before the tool runs.
    task = api.submit(bash("sleep 30"), {"text": "slept", "delay": 3},
                      allowed_tools=["Bash(sleep *)"], timeout_seconds=TOOL_TIMEOUT_S)
    api.wait_running(task["id"])
    wait_for(lambda: tool_processes(tmp_path, "sleep 30", shells=False), timeout_s=20,
             message="the sleep 30 tool to run")
    done = api.wait_terminal(task["id"], timeout_s=30)
    # The row is written after the reaper shim exited, which is after the tool tree died.
    left = describe(agent_processes(tmp_path, "sleep 30"))  # the tool, claude and its shim

    assert done["status"] == "timed_out", done
    assert done["error"]["code"] == "timeout"
    assert f"{TOOL_TIMEOUT_S}s" in done["error"]["message"]
    assert TOOL_TIMEOUT_S <= duration(done) < TOOL_TIMEOUT_S + 6, duration(done)
    assert done["result"] is None and done["attempts"] == 1
    assert done["usage"]["input_tokens"] >= 100  # what was seen before the stop is kept
    assert done["cost_usd"] == pytest.approx(priced(done["usage"]), abs=1e-6)
    assert left == []

    events = api.events(task["id"])
    assert_started_with_init(events, done)
    use = index_of(events, lambda e: e["type"] == "assistant" and blocks(e, "tool_use"))
    assert blocks(events[use], "tool_use")[0]["input"]["command"] == "sleep 30"
    assert "result" not in [e["type"] for e in events]


# -- 5. stall -----------------------------------------------------------------------------------

def test_a_stalled_model_stream_ends_as_stalled(fleet, start_worker, model_api):
    api = fleet()
    start_worker("w1", agents={"stall_timeout_seconds": 3})
    task = api.submit({"stall": 60, "usage": {"input_tokens": 321}})
    done = api.wait_terminal(task["id"], timeout_s=30)

    assert done["status"] == "timed_out", done
    assert done["error"]["code"] == "stalled"
    assert "3s" in done["error"]["message"]
    assert 3 <= duration(done) < 10, duration(done)
    assert done["usage"]["input_tokens"] == 321
    assert done["cost_usd"] == pytest.approx(priced(done["usage"]), abs=1e-6)
    assert done["result"] is None and done["attempts"] == 1

    events = api.events(task["id"])
    assert_started_with_init(events, done)
    assert "result" not in [e["type"] for e in events]
    last_start = [e for e in events if e["type"] == "stream_event"][-1]
    assert last_start["data"]["event"]["type"] == "message_start"
    assert [rec["reply"] for rec in main_requests(model_api)] == ["stall"]


# -- 6. cancel while running --------------------------------------------------------------------

def test_cancel_while_running_stops_agent_and_tool_within_5s(fleet, start_worker, tmp_path,
                                                               claude_bin):
    api = fleet()
    start_worker("w1")
    task = api.submit(bash("sleep 31"), {"text": "slept", "delay": 3},
                      allowed_tools=["Bash(sleep *)"], timeout_seconds=120)
    api.wait_running(task["id"])
    wait_for(lambda: tool_processes(tmp_path, "sleep 31", shells=False), timeout_s=20,
             message="the sleep 31 tool to run")
    assert claude_processes(tmp_path, claude_bin)

    started = time.monotonic()
    response = api.cancel(task["id"])
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "running"  # a running task is asked to stop
    done = api.wait_terminal(task["id"], timeout_s=10)
    took = time.monotonic() - started

    assert done["status"] == "cancelled", done
    assert took < 5, f"cancel took {took:.2f}s"
    assert done["error"]["code"] == "cancelled"
    assert done["attempts"] == 1
    assert tool_processes(tmp_path, "sleep 31") == []
    assert claude_processes(tmp_path, claude_bin) == []
    assert agent_processes(tmp_path, done["session_id"]) == []
    again = api.cancel(task["id"])
    assert again.status_code == 409, again.get_json()

    events = api.events(task["id"])
    assert_started_with_init(events, done)
    use = index_of(events, lambda e: e["type"] == "assistant" and blocks(e, "tool_use"))
    assert blocks(events[use], "tool_use")[0]["input"]["command"] == "sleep 31"


# -- 7. a 429: parked and retried, or failed when its policy allows no retry -----------------

def test_rate_limit_with_no_retries_left_fails_the_task(fleet, start_worker, model_api):
    api = fleet()
    start_worker("w1")
    task = api.submit({"error": 429}, retries={"rate_limited": {"attempts": 1}})
    done = api.wait_terminal(task["id"], timeout_s=60)

    assert done["status"] == "failed", done
    assert done["error"]["code"] == "rate_limited"
    assert "429" in done["error"]["message"]
    assert done["result"] is None
    assert done["usage"] == dict.fromkeys(USAGE_FIELDS, 0)
    assert done["cost_usd"] == 0
    assert done["attempts"] == 1

    events = api.events(task["id"])
    assert_started_with_init(events, done)
    result = events[-1]
    assert result["type"] == "result"
    assert result["data"]["is_error"] is True and result["data"]["api_error_status"] == 429
    assert "api_retry" not in [e["subtype"] for e in events]
    assert [rec["reply"] for rec in main_requests(model_api)] == ["error"]  # CLAUDE_CODE_MAX_RETRIES=0


def test_a_rate_limited_run_parks_its_task_and_the_retry_finishes_it(fleet, start_worker, model_api):
    api = fleet()
    start_worker("w1")
    # The retry resumes the session: the CLI closes the interrupted turn with an assistant
    # "No response requested.", so the resumed request asks for step 1.
    task = api.submit({"error": 429}, {"text": "second time lucky"},
                      retries={"rate_limited": {"backoff_seconds": 2}})
    parked = wait_for(lambda: (found := api.get(task["id"]))["waiting_for"] == "retry" and found,
                      timeout_s=60, message="the task to park after its 429")
    assert (parked["status"], parked["error"]["code"]) == ("queued", "rate_limited")
    assert parked["retry_at"] is not None
    done = api.wait_terminal(task["id"], timeout_s=60)

    assert (done["status"], done["result"], done["error"]) == ("succeeded", "second time lucky", None)
    assert (done["attempts"], done["waiting_for"], done["retry_at"]) == (2, None, None)
    first, second = api.client.get(f"/api/v1/tasks/{task['id']}/attempts").get_json()["attempts"]
    assert (first["status"], first["error"]["code"], first["worker"]) == ("failed", "rate_limited", "w1@test")
    assert first["retry_at"] == parked["retry_at"]
    assert (second["status"], second["error"], second["retry_at"]) == ("succeeded", None, None)
    assert second["started_at"] >= first["retry_at"]
    retry_notes = [e["data"] for e in api.events(task["id"]) if e["subtype"] == "retry"]
    assert [(n["error_code"], n["attempt"]) for n in retry_notes] == [("rate_limited", 1)]
    assert [rec["reply"] for rec in main_requests(model_api)] == ["error", "text"]
    resumed = json.dumps(main_requests(model_api)[-1]["body"]["messages"])
    assert "[[script:" in resumed and "stopped before it finished (rate_limited)" in resumed


def test_an_auth_failure_is_final_and_never_retried(fleet, start_worker, model_api):
    api = fleet()
    start_worker("w1")
    task = api.submit({"error": 401, "times": 1, "then": {"text": "never reached"}})
    done = api.wait_terminal(task["id"], timeout_s=60)
    assert (done["status"], done["error"]["code"], done["attempts"]) == ("failed", "auth_failed", 1)
    refused = api.client.post("/api/v1/tasks", json={"prompt": "p",
                                                     "retries": {"auth_failed": {"attempts": 2}}})
    assert refused.status_code == 422 and refused.get_json()["error"]["field"].startswith("retries")
    assert [rec["reply"] for rec in main_requests(model_api)] == ["error"]


# -- 8. a worker SIGKILLed mid-task -------------------------------------------------------------

def stored_tool_results(database_url: str, task_id: str) -> list[Any]:
    """The tool results in the task's session transcript as the workers stored it last."""
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT transcript FROM task_sessions WHERE task_id = :id"),
                                        {"id": task_id}).scalar_one_or_none()
    finally:
        engine.dispose()
    lines = gzip.decompress(stored).decode().splitlines() if stored else []
    return [block.get("content") for line in lines
            for block in ((json.loads(line).get("message") or {}).get("content") or [])
            if isinstance(block, dict) and block.get("type") == "tool_result"]


def test_a_killed_workers_task_resumes_its_session_on_the_other_worker(
        fleet, start_worker, tmp_path, model_api, claude_bin, database_url):
    api = fleet()

    def own_dirs(name: str) -> dict[str, dict[str, Any]]:
        """A worker's own data and workspace directories: the two share Postgres and Redis only."""
        return {"embedded": {"data_dir": str(tmp_path / name / "data")},
                "agents": {"workspace_root": str(tmp_path / name / "workspaces")}}

    workers = {w.name: w for w in (start_worker("w1", daemon={"max_agents": 1}, **own_dirs("w1")),
                                    start_worker("w2", daemon={"max_agents": 1}, **own_dirs("w2")))}
    # The first tool appends to a file in the workspace; the second is still running when its
    # worker dies. A resumed session asks for step 2 (two assistant messages before it).
    task = api.submit(bash("echo ran | tee -a runs.txt"), bash("sleep 32"),
                      {"text": "finished: {tool_result}"},
                      allowed_tools=["Bash(echo *)", "Bash(tee *)", "Bash(sleep *)"], timeout_seconds=120)
    running = api.wait_running(task["id"])
    wait_for(lambda: tool_processes(tmp_path, "sleep 32", shells=False), timeout_s=20,
             message="the sleep 32 tool to run")
    wait_for(lambda: stored_tool_results(database_url, task["id"]) == ["ran"], timeout_s=10,
             message="the session to be stored with the first tool's result")
    spent_first = api.wait_until(task["id"], lambda t: t["usage"]["input_tokens"] > 0, 10,
                                 "attempt 1's heartbeat to record its usage")["usage"]
    victim = workers[running["worker"]]
    survivor = next(w for name, w in workers.items() if name != running["worker"])
    tree = descendants(victim.process.pid)
    assert [p.cmdline for p in tree if p.cmdline == "sleep 32"], describe(tree)
    assert [p for p in tree if p.argv[0] == claude_bin], describe(tree)

    victim.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    victim.process.wait(5)
    # The pool child dies with its worker, the reaper shim then stops claude and its tools.
    wait_for(lambda: not [proc for proc in tree if proc.alive()], timeout_s=10,
             message="the killed worker's pool, claude and tools to die")
    assert tool_processes(tmp_path, "sleep 32") == []
    assert not [p for p in claude_processes(tmp_path, claude_bin)
                if f"slots/{victim.name}-" in p.environ]

    second = api.wait_until(task["id"], lambda t: t["attempts"] == 2, timeout_s=20,
                            message="to be claimed again")
    assert time.monotonic() - killed_at < 20
    assert second["worker"] == survivor.name
    done = api.wait_terminal(task["id"], timeout_s=30)

    assert done["status"] == "succeeded", done
    assert done["result"] == "finished: ran"
    assert done["attempts"] == 2 and done["worker"] == survivor.name and done["error"] is None
    # The finished tool did not run again: its output came back with the restored workspace.
    victim_short, survivor_short = victim.name.split("@")[0], survivor.name.split("@")[0]
    workspace = tmp_path / survivor_short / "workspaces" / task["id"]
    assert (workspace / "runs.txt").read_text() == "ran\n"
    assert (tmp_path / victim_short / "workspaces" / task["id"] / "runs.txt").read_text() == "ran\n"
    replies = [(rec["step"], rec["reply"]) for rec in main_requests(model_api)]
    assert replies == [(0, "tool_use"), (1, "tool_use"), (2, "text")], replies
    # The resumed request carries the first run's messages: the prompt, the echo and its result.
    resumed = main_requests(model_api)[-1]["body"]["messages"]
    sent = json.dumps(resumed)
    assert "[[script:" in json.dumps(resumed[0]) and "echo ran | tee -a runs.txt" in sent
    assert [b["content"] for m in resumed if isinstance(m["content"], list) for b in m["content"]
            if b.get("type") == "tool_result"] == ["ran"]
    assert "Your previous run of this task stopped before it finished" in sent

    events = api.events(task["id"])
    first, last = attempt_events(events, 1), attempt_events(events, 2)
    assert first and last and len(first) + len(last) == len(events)
    assert "result" not in [e["type"] for e in first]
    [resume_note] = [e["data"] for e in last if e["subtype"] == "session"]
    assert resume_note["action"] == "resume" and resume_note["from_attempt"] == 1
    results = [e for e in events if e["type"] == "result"]
    assert len(results) == 1 and results[0] is last[-1]
    assert results[0]["data"]["session_id"] == resume_note["session_id"]
    # What the killed first run spent stays counted, on top of the second run's own usage.
    assert done["usage"]["input_tokens"] == (spent_first["input_tokens"]
                                             + results[0]["data"]["usage"]["input_tokens"])
    assert api.get(task["id"]) == done


def test_a_finished_task_is_continued_by_a_follow_up_that_forks_its_session(
        fleet, start_worker, model_api):
    api = fleet()
    start_worker("w1")
    task = api.submit(bash("echo first | tee notes.txt"), {"text": "wrote {tool_result}"},
                      allowed_tools=["Bash(echo *)", "Bash(tee *)", "Bash(cat *)"])
    done = api.wait_terminal(task["id"], timeout_s=60)
    assert (done["status"], done["result"]) == ("succeeded", "wrote first")

    response = api.client.post(f"/api/v1/tasks/{task['id']}/continue",
                               json={"prompt": "also read notes.txt back"})
    assert response.status_code == 202, response.get_json()
    follow_up = response.get_json()
    assert (follow_up["continues"], follow_up["status"]) == (task["id"], "queued")
    assert follow_up["allowed_tools"] == done["allowed_tools"]
    ended = api.wait_terminal(follow_up["id"], timeout_s=60)
    assert ended["status"] == "succeeded", ended
    assert ended["session_id"] != done["session_id"]
    # The fork's request holds the first task's conversation, then the follow-up prompt; its
    # reply is the script's step 2 ("done": past the end), on the restored workspace.
    last = main_requests(model_api)[-1]["body"]["messages"]
    assert "echo first | tee notes.txt" in json.dumps(last)
    assert "also read notes.txt back" in json.dumps(last[-1])
    assert api.get(task["id"]) == done  # the original stays as it ended

    unknown = api.client.post("/api/v1/tasks/00000000-0000-4000-8000-000000000000/continue",
                              json={"prompt": "x"})
    assert unknown.status_code == 404
    empty = api.client.post(f"/api/v1/tasks/{task['id']}/continue", json={"prompt": ""})
    assert empty.status_code == 422 and empty.get_json()["error"]["field"] == "prompt"


# -- 9. two workers, two slots each, ten tasks --------------------------------------------------

def test_two_workers_keep_four_slots_busy_and_run_each_task_once(fleet, start_worker, tmp_path,
                                                                  claude_bin, database_url,
                                                                  model_api):
    api = fleet()
    start_worker("w1", daemon={"max_agents": 2})
    start_worker("w2", daemon={"max_agents": 2})
    engine = make_engine(database_url, pool_size=1, max_overflow=0)

    def probe() -> tuple[int, int]:
        with engine.connect() as conn:
            running = conn.execute(text("SELECT count(*) FROM tasks WHERE status = 'running'"))
            return len(claude_processes(tmp_path, claude_bin)), int(running.scalar_one())

    with Sampler(probe, interval_s=0.05) as sampler:
        submitted = []
        for n in range(10):
            submitted.append(api.submit({"text": f"task {n} done", "delay": 0.35},
                                        prompt_prefix=f"job-{n:02d} "))
        all_queued_at = time.time()
        done = [api.wait_terminal(task["id"], timeout_s=90) for task in submitted]
    engine.dispose()

    assert [task["status"] for task in done] == ["succeeded"] * 10, done
    assert [task["attempts"] for task in done] == [1] * 10
    assert [task["result"] for task in done] == [f"task {n} done" for n in range(10)]
    assert Counter(task["worker"] for task in done).keys() == {"w1@test", "w2@test"}
    for n, task in enumerate(done):
        assert [rec["step"] for rec in main_requests(model_api, f"job-{n:02d} ")] == [0]
        results = [e for e in api.events(task["id"]) if e["type"] == "result"]
        assert len(results) == 1

    procs = [sample[0] for _, sample in sampler.samples]
    rows = [sample[1] for _, sample in sampler.samples]
    assert len(sampler.samples) > 50
    assert max(procs) == 4, Counter(procs)
    assert max(rows) == 4, Counter(rows)

    # Slots are never idle while work waits. With 4 slots, the k-th start (k > 4) can only come
    # after the (k-4)-th finish, and must come within HANDOFF_S of it; the first 4 starts must
    # come within HANDOFF_S of the moment all tasks were queued.
    handoff_s = 1.5
    starts = sorted(ts(task["started_at"]) for task in done)
    finishes = sorted(ts(task["finished_at"]) for task in done)
    for k in range(4):
        assert starts[k] - all_queued_at < handoff_s, (k, starts[k] - all_queued_at)
    gaps = []
    for k in range(4, 10):
        gap = starts[k] - finishes[k - 4]
        gaps.append(round(gap, 3))
        assert 0 <= gap < handoff_s, (k, gaps)
    # At most 4 ran at once, also by the rows' own timestamps.
    for t in starts:
        assert sum(1 for task in done if ts(task["started_at"]) <= t < ts(task["finished_at"])) <= 4


# -- priority -----------------------------------------------------------------------------------

def test_critical_task_takes_the_next_free_slot_before_waiting_normal_ones(fleet, start_worker):
    api = fleet()
    start_worker("w1", daemon={"max_agents": 1})
    blocker = api.submit({"text": "blocker done", "delay": 0.6})
    api.wait_running(blocker["id"])
    normals = [api.submit({"text": f"normal {n}"}, prompt_prefix=f"normal-{n} ")
               for n in range(5)]
    critical = api.submit({"text": "critical"}, priority="critical")
    assert api.get(blocker["id"])["status"] == "running"  # all six waited behind it

    blocker_done = api.wait_terminal(blocker["id"], timeout_s=30)
    critical_done = api.wait_terminal(critical["id"], timeout_s=30)
    normals_done = [api.wait_terminal(task["id"], timeout_s=60) for task in normals]

    assert blocker_done["status"] == "succeeded", blocker_done
    assert critical_done["status"] == "succeeded", critical_done
    assert critical_done["priority"] == "critical"
    assert [task["status"] for task in normals_done] == ["succeeded"] * 5
    critical_start = ts(critical_done["started_at"])
    assert critical_start < min(ts(task["started_at"]) for task in normals_done)
    assert 0 <= critical_start - ts(blocker_done["finished_at"]) < 1.5
    assert ts(critical_done["created_at"]) > max(ts(task["created_at"]) for task in normals_done)


# -- queue routing ------------------------------------------------------------------------------

def test_queue_routing_sends_a_task_only_to_workers_of_its_queue(fleet, start_worker):
    api = fleet(agents={"queues": ["cca", "special"]})  # the fleet's queues, "cca" the default
    start_worker("plain", daemon={"max_agents": 1})
    special = api.submit({"text": "special done"}, queue="special")
    assert special["queue"] == "special"
    plain = api.submit({"text": "plain done"})
    assert plain["queue"] == "cca"

    # The default-queue worker is alive and idle: it runs the later plain task, never the other.
    plain_done = api.wait_terminal(plain["id"], timeout_s=60)
    assert plain_done["status"] == "succeeded" and plain_done["worker"] == "plain@test"
    waiting = api.get(special["id"])
    assert waiting["status"] == "queued" and waiting["attempts"] == 0 and waiting["worker"] is None

    start_worker("special", extra_args=("--queues", "special"), daemon={"max_agents": 1})
    special_done = api.wait_terminal(special["id"], timeout_s=60)
    assert special_done["status"] == "succeeded", special_done
    assert special_done["worker"] == "special@test"
    assert special_done["result"] == "special done" and special_done["attempts"] == 1
    events = api.events(special["id"])
    assert_started_with_init(events, special_done)
    assert events[-1]["type"] == "result"


# -- bugs found ---------------------------------------------------------------------------------

FAIL_ATTEMPT_1_EVENTS = """
CREATE FUNCTION cca_test_refuse_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.attempt = 1 THEN RAISE EXCEPTION 'injected: task_events unavailable'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER cca_test_refuse_events BEFORE INSERT ON task_events
  FOR EACH ROW EXECUTE FUNCTION cca_test_refuse_events();
"""


def test_an_agent_is_stopped_when_its_supervision_fails(fleet, start_worker, tmp_path, claude_bin,
                                                        database_url):
    """If writing a run's events (or its heartbeat) raises, the agent must not go on
    unsupervised (no timeout, no watchdog, no cancel, and a second run once the lease expires):
    the worker stops it and records the failure."""
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    with engine.begin() as conn:
        conn.exec_driver_sql(FAIL_ATTEMPT_1_EVENTS)
    engine.dispose()
    api = fleet()
    worker = start_worker("w1")
    task = api.submit(bash("sleep 34"), {"text": "slept"},
                      allowed_tools=["Bash(sleep *)"], timeout_seconds=8)
    wait_for(lambda: "injected: task_events unavailable" in worker.log.read_text(), timeout_s=30,
             message="the event flush of attempt 1 to fail")
    # The run is over for the worker; its agent must not go on (grace 2 s + margin).
    wait_for(lambda: not claude_processes(tmp_path, claude_bin)
             and not tool_processes(tmp_path, "sleep 34"), timeout_s=6,
             message=f"the agent of the failed run of task {task['id']} to be stopped")
    ended = api.wait_terminal(task["id"], timeout_s=20)
    assert (ended["status"], ended["error"]["code"]) == ("failed", "supervision_failed")
    assert ended["attempts"] == 1

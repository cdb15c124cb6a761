"""Coordinated tasks end to end: the real API, two real `cca worker` processes, the real
`claude` CLI against the scripted Messages API. The coordinator's plan is its structured output
(the CLI's StructuredOutput tool under --json-schema); cca checks it, runs the specialists as
the task's children on any free slot, and a summary step combines their results."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cca_api import create_app
from tests.support.fleet import (
    FleetAPI,
    bash,
    belongs_to,
    claude_processes,
    live_processes,
    script,
    steps_by_name,
    ts,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


def plan(*delegations: dict, summary: str = "summary: " + script({"text": "all three agree"}),
         **extra) -> dict:
    """A script step in which the coordinator gives its plan as structured output."""
    body = {"action": "delegate", "summary": "split three ways", "delegations": list(delegations),
            "summary_instructions": summary, **extra}
    return {"tool_use": {"name": "StructuredOutput", "input": body}}


def delegation(name: str, role: str, *steps: dict, depends_on: tuple[str, ...] = ()) -> dict:
    return {"name": name, "role": role, "task": f"{name}: " + script(*steps),
            "depends_on": list(depends_on)}


@pytest.fixture
def api(make_settings) -> FleetAPI:
    return FleetAPI(create_app(make_settings()).test_client())


def prompts(model_api) -> list[str]:
    """The prompts the agents were given: the text blocks of each main request's first
    message (the CLI adds a system-reminder block of its own)."""
    found = []
    for body in model_api.requests:
        content = body["messages"][0]["content"]
        if body.get("tools"):
            found += [content] if isinstance(content, str) else [
                b.get("text", "") for b in content if not b.get("text", "").startswith("<system")]
    return found


def first_message(model_api, start: str) -> str:
    """The first prompt that starts with ``start``."""
    return next(text for text in prompts(model_api) if text.startswith(start))


def test_a_coordinator_plans_three_specialists_two_in_parallel_and_the_summary_combines_them(
        api, start_worker, model_api):
    start_worker("w1", daemon={"max_agents": 1})
    start_worker("w2", daemon={"max_agents": 1})
    coordinator = plan(
        delegation("scan", "security", bash("sleep 2"), {"text": "no injection found"}),
        delegation("tests", "qa", bash("sleep 2"), {"text": "4 tests added"}),
        delegation("fix", "backend", {"text": "fixed the parser"}, depends_on=("scan", "tests")))
    parent = api.submit(coordinator, prompt_prefix="review the parser ", mode="coordinate")
    shown = api.get(parent["id"])
    assert (shown["status"], shown["waiting_for"], shown["worker"]) == ("running", "children", None)

    done = api.wait_terminal(parent["id"], timeout_s=120)
    assert done["status"] == "succeeded", done
    workflow = api.workflow(done["workflow_id"])
    steps = steps_by_name(workflow)
    names = [s["name"] for s in workflow["tasks"]]  # each after what it depends on
    assert set(names) == {"plan", "scan", "tests", "fix", "summary"}
    assert names[-2:] == ["fix", "summary"]
    assert all(s["status"] == "succeeded" for s in steps.values()), workflow
    scan, tests = steps["scan"], steps["tests"]
    assert {scan["worker"], tests["worker"]} == {"w1@test", "w2@test"}
    assert ts(scan["started_at"]) < ts(tests["finished_at"])
    assert ts(tests["started_at"]) < ts(scan["finished_at"]), "scan and tests did not overlap"
    assert [(s["role"]) for s in (scan, tests, steps["fix"])] == ["security", "qa", "backend"]

    fixer = first_message(model_api, "fix: [[script:")
    assert "no injection found" in fixer and "4 tests added" in fixer
    summarizer = first_message(model_api, "summary: [[script:")
    assert "## The task\n\nreview the parser" in summarizer
    assert all(text in summarizer for text in ("no injection found", "4 tests added",
                                               "fixed the parser"))
    planner = next(body for body in model_api.requests if body.get("tools") and any(
        tool["name"] == "StructuredOutput" for tool in body["tools"]))
    assert "delegation plan" in json.dumps(planner["system"])

    result = done["result"]
    assert result.startswith("## Summary\n\nall three agree")
    for text in ("no injection found", "4 tests added", "fixed the parser"):
        assert text in result
    assert done["structured_output"]["delegations"][2]["depends_on"] == ["scan", "tests"]
    children = api.client.get(f"/api/v1/tasks?parent_id={parent['id']}").get_json()["tasks"]
    assert len(children) == 5 and {c["depth"] for c in children} == {1}
    assert sorted(api.get(parent["id"])["children"]) == sorted(c["id"] for c in children)
    assert workflow["usage"]["input_tokens"] == sum(c["usage"]["input_tokens"] for c in children)


def test_a_failed_specialist_still_gets_a_partial_summary(api, start_worker, model_api):
    start_worker("w1")
    coordinator = plan(delegation("scan", "security", {"text": "no secrets found"}),
                       delegation("tests", "qa", {"error": 400}),
                       delegation("fix", "backend", {"text": "never"}, depends_on=("tests",)))
    done = api.wait_terminal(api.submit(coordinator, mode="coordinate")["id"], timeout_s=90)
    assert done["status"] == "failed" and done["error"]["code"] == "failed"
    steps = steps_by_name(api.workflow(done["workflow_id"]))
    assert [steps[n]["status"] for n in ("scan", "tests", "fix", "summary")] == [
        "succeeded", "failed", "cancelled", "succeeded"]
    assert steps["fix"]["error"]["code"] == "dependency_failed"
    assert steps["summary"]["run_when"] == "ended"
    summarizer = first_message(model_api, "summary: [[script:")
    assert '<cca-step name="tests" role="qa" status="failed">' in summarizer
    assert done["result"].startswith("## Summary\n\nall three agree")
    assert "## scan (security): succeeded\n\nno secrets found" in done["result"]
    assert "## fix (backend): cancelled" in done["result"]


def test_a_plan_that_does_not_validate_gets_one_repair_round(api, start_worker, model_api):
    start_worker("w1")
    bad = plan(delegation("x", "wizard", {"text": "never"}))
    good = plan(delegation("x", "qa", {"text": "done by qa"}))
    parent = api.submit({**bad, "times": 1, "then": good}, mode="coordinate",
                        allowed_tools=["Read(./**)", "Bash(git *)"])
    done = api.wait_terminal(parent["id"], timeout_s=90)
    assert done["status"] == "succeeded", done
    steps = steps_by_name(api.workflow(done["workflow_id"]))
    assert set(steps) == {"plan", "plan-repair", "x", "summary"}
    child = api.get(steps["x"]["task_id"])  # qa's tools, within the task's own
    assert (child["allowed_tools"], child["parent_id"]) == (["Read(./**)", "Bash(git *)"],
                                                            parent["id"])
    repair = next(text for text in prompts(model_api) if "Your previous plan was refused" in text)
    assert "wizard is not a specialist" in repair and '"role": "wizard"' in repair
    assert "done by qa" in done["result"]


def test_a_plan_bad_twice_fails_the_task_with_the_errors(api, start_worker):
    start_worker("w1")
    cyclic = plan(delegation("a", "qa", depends_on=("b",)), delegation("b", "qa", depends_on=("a",)))
    done = api.wait_terminal(api.submit(cyclic, role="coordinator")["id"], timeout_s=90)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "invalid_plan" and "cycle" in done["error"]["message"]
    workflow = api.workflow(done["workflow_id"])
    assert workflow["status"] == "failed" and workflow["error"]["code"] == "invalid_plan"
    assert [s["name"] for s in workflow["tasks"]] == ["plan", "plan-repair"]


def test_a_direct_answer_and_a_refusal_end_the_task_without_children(api, start_worker):
    start_worker("w1")
    direct = {"tool_use": {"name": "StructuredOutput",
                           "input": {"action": "direct", "answer": "42 files"}}}
    refuse = {"tool_use": {"name": "StructuredOutput",
                           "input": {"action": "error", "error": "needs a GPU"}}}
    answered = api.wait_terminal(api.submit(direct, mode="coordinate")["id"], timeout_s=60)
    refused = api.wait_terminal(api.submit(refuse, mode="coordinate")["id"], timeout_s=60)
    assert (answered["status"], answered["result"]) == ("succeeded", "42 files")
    assert (refused["status"], refused["error"]) == (
        "failed", {"code": "coordinator_refused", "message": "needs a GPU"})


def test_cancelling_a_coordinated_task_midway_leaves_nothing_running(
        api, start_worker, tmp_path: Path, claude_bin: str):
    start_worker("w1")
    coordinator = plan(delegation("slow", "qa", bash("sleep 60"), {"text": "never"}),
                       delegation("slower", "backend", bash("sleep 60"), {"text": "never"}))
    parent = api.submit(coordinator, mode="coordinate")
    wait_for(lambda: len(claude_processes(tmp_path, claude_bin)) == 2, timeout_s=60,
             message="both specialists to run")
    answer = api.cancel(parent["id"])
    assert answer.status_code == 200, answer.get_json()
    done = api.wait_terminal(parent["id"], timeout_s=30)
    assert done["status"] == "cancelled"
    steps = steps_by_name(api.workflow(done["workflow_id"]))
    assert steps["plan"]["status"] == "succeeded"
    assert {steps[n]["status"] for n in ("slow", "slower", "summary")} == {"cancelled"}
    wait_for(lambda: not [p for p in live_processes() if belongs_to(p, tmp_path)
                          and (claude_bin in p.cmdline or re.search(r"\bsleep 60\b", p.cmdline))],
             timeout_s=30, message="no agent or tool process left")


def test_a_tree_whose_budget_runs_out_stops(api, start_worker):
    """Each child stays under its own budget (at most the tree's); together they spend the
    tree's, and the next heartbeat stops both."""
    start_worker("w1")
    costly = {**bash("sleep 30"), "usage": {"input_tokens": 12000, "output_tokens": 10}}
    coordinator = plan(delegation("left", "qa", costly, {"text": "never"}),
                       delegation("right", "qa", costly, {"text": "never"}),
                       delegation("after", "backend", {"text": "never"},
                                  depends_on=("left", "right")))
    parent = api.submit(coordinator, mode="coordinate", token_budget=20000)
    done = api.wait_terminal(parent["id"], timeout_s=60)
    assert done["status"] == "budget_exceeded", done
    assert done["error"]["code"] == "budget_exceeded"
    workflow = api.workflow(done["workflow_id"])
    steps = steps_by_name(workflow)
    assert [steps[n]["error"]["code"] for n in ("left", "right", "after", "summary")] == [
        "budget_exceeded"] * 4
    assert steps["after"]["started_at"] is None
    assert workflow["usage"]["input_tokens"] >= 24000
    assert "## left (qa): cancelled" in done["result"]

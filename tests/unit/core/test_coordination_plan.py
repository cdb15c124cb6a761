"""A coordinator's plan is checked before anything runs: every problem is listed at once (the
repair round shows them all), and a child never gets more permissions than its task."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from cca_core.errors import Invalid
from cca_core.infra.config import validate
from cca_core.workflows.coordination import (
    bounded_permissions,
    check_plan,
    child_values,
    result_of,
)

AGENTS = validate({"agents": {"max_children_per_task": 3, "max_depth": 2}}).agents


def delegate(*items: dict, **extra) -> dict:
    return {"action": "delegate", "summary": "s", "delegations": list(items), **extra}


def item(name: str, role: str = "qa", *deps: str, **extra) -> dict:
    return {"name": name, "role": role, "task": f"do {name}", "depends_on": list(deps), **extra}


def test_a_good_plan_with_a_diamond_comes_back_parsed():
    plan = check_plan(delegate(item("a"), item("b", "security", "a"), item("c", "backend", "a"),
                               summary_instructions="focus on risk"),
                      AGENTS, depth=0, token_budget=None)
    assert [d.name for d in plan.delegations] == ["a", "b", "c"]
    assert plan.summary_instructions == "focus on risk"


def test_every_problem_of_a_bad_plan_is_listed():
    with pytest.raises(Invalid) as err:
        check_plan(delegate(item("a", "wizard"), item("b", "coordinator"), item("a"),
                            item("d", "qa", "zzz")),
                   AGENTS, depth=2, token_budget=None)
    message = err.value.message
    assert err.value.field == "plan"
    assert "4 is over the limit of 3" in message
    assert "depth 3, over agents.max_depth = 2" in message
    assert "delegations[0].role: wizard is not a specialist" in message
    assert "delegations[1].role: coordinator is not a specialist" in message
    assert "delegations[2].name" in message


def test_a_cycle_and_budgets_over_the_task_are_refused():
    with pytest.raises(Invalid) as err:
        check_plan(delegate(item("a", "qa", "b", token_budget=600),
                            item("b", "qa", "a", token_budget=600)),
                   AGENTS, depth=0, token_budget=1000)
    assert "cycle" in err.value.message and "add up to 1200, over the task's 1000" in err.value.message


@pytest.mark.parametrize(("raw", "found"), [
    (None, "plan"), ({"action": "guess"}, "action"), ({"action": "delegate"}, "at least one"),
    (delegate({"name": "a b", "role": "qa", "task": "x"}), "delegations.0.name"),
])
def test_what_is_not_a_plan_is_refused_saying_where(raw, found):
    with pytest.raises(Invalid) as err:
        check_plan(raw, AGENTS, depth=0, token_budget=None)
    assert found in err.value.message


def test_direct_and_error_plans_need_no_delegations():
    assert check_plan({"action": "direct", "answer": "42"}, AGENTS, depth=9,
                      token_budget=None).answer == "42"
    assert check_plan({"action": "error", "error": "no"}, AGENTS, depth=0,
                      token_budget=None).error == "no"


def parent(**fields) -> SimpleNamespace:
    base = {"id": uuid.uuid4(), "prompt": "p", "depth": 0, "priority": "normal", "queue": "cca",
            "cwd": None, "token_budget": 50_000, "permission_mode": None, "allowed_tools": None,
            "denied_tools": None}
    return SimpleNamespace(**{**base, **fields})


def test_a_child_keeps_its_roles_tools_within_the_tasks_own():
    narrow = parent(allowed_tools=["Read(./**)", "Bash(git *)"], denied_tools=["Bash(git push *)"])
    qa = bounded_permissions(narrow, AGENTS.permissions_of("qa"), AGENTS)
    assert qa["allowed_tools"] == ["Read(./**)", "Bash(git *)"]
    assert "Bash(git push *)" in qa["denied_tools"] and "Bash(sudo *)" in qa["denied_tools"]
    security = bounded_permissions(parent(), AGENTS.permissions_of("security"), AGENTS)
    assert "Edit(src/**)" not in security["allowed_tools"]  # its role is read-only
    sandboxed = bounded_permissions(parent(permission_mode="sandbox"),
                                    AGENTS.permissions_of("backend"), AGENTS)
    assert sandboxed["permission_mode"] == "sandbox"


def test_a_child_budget_never_exceeds_the_trees():
    values = child_values(parent(token_budget=5000), "qa", "x", AGENTS, token_budget=9000)
    assert (values["token_budget"], values["depth"], values["role"]) == (5000, 1, "qa")


def test_the_result_holds_the_summary_then_each_child():
    summary = SimpleNamespace(result="all good")
    children = [SimpleNamespace(step="scan", role="security", status="succeeded", result="clean"),
                SimpleNamespace(step="fix", role="backend", status="failed", result=None)]
    assert result_of(summary, children, None) == (
        "## Summary\n\nall good\n\n## scan (security): succeeded\n\nclean\n\n"
        "## fix (backend): failed\n\n")

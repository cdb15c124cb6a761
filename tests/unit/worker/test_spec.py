"""Resolving a run from the task row, the role and the fleet's agent settings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cca_core.errors import Invalid
from cca_core.settings import AgentSettings
from cca_worker.spec import resolve_spec
from tests.support.argv import option_values, permission_rules


def task(**fields):
    values = {"id": "t-1", "prompt": "p", "role": None, "model": None, "permission_mode": None,
              "allowed_tools": None, "denied_tools": None, "max_turns": None,
              "max_budget_usd": None, "json_schema": None, "token_budget": 100000,
              "timeout_seconds": 600}
    return SimpleNamespace(**{**values, **fields})


def allowed(spec) -> list[str]:
    return permission_rules(spec.permission_flags, "allow")


def test_defaults_come_from_the_agent_settings():
    agents = AgentSettings(default_model="sonnet")
    spec, note = resolve_spec(task(), agents, "s", "/py")
    assert spec.model == "sonnet" and note is None and spec.mcp_config is None
    assert allowed(spec) == ["Read(./**)", "Glob(./**)", "Grep(./**)", "Edit(src/**)",
                             "Edit(tests/**)", "Bash(git *)"]


def test_a_role_overrides_model_and_permissions():
    agents = AgentSettings.model_validate({"roles": {"reviewer": {
        "model": "haiku", "token_budget": 5000, "timeout_seconds": 60,
        "permissions": {"mode": "sandbox"}}}})
    spec, _ = resolve_spec(task(role="reviewer"), agents, "s", "/py")
    assert spec.model == "haiku" and option_values(spec.permission_flags, "tools")


def test_task_fields_win_and_deny_rules_add_up():
    spec, _ = resolve_spec(task(model="opus", allowed_tools=["Bash(echo *)"],
                                denied_tools=["Bash(git push *)"]), AgentSettings(), "s", "/py")
    assert spec.model == "opus" and allowed(spec) == ["Bash(echo *)"]
    denied = permission_rules(spec.permission_flags, "deny")
    assert "Bash(git push *)" in denied and "Bash(sudo *)" in denied


def test_the_bridge_is_offered_outside_sandbox_mode():
    agents = AgentSettings(bridge_url="http://127.0.0.1:9200")
    spec, _ = resolve_spec(task(), agents, "s", "/py")
    assert "mcp__cca" in allowed(spec)
    assert spec.mcp_config["mcpServers"]["cca"]["env"]["CCA_TASK_ID"] == "t-1"
    sandboxed, _ = resolve_spec(task(permission_mode="sandbox"), agents, "s", "/py")
    assert sandboxed.mcp_config is None


def test_dangerous_needs_the_fleet_to_allow_it():
    with pytest.raises(Invalid):
        resolve_spec(task(permission_mode="dangerous"), AgentSettings(), "s", "/py")
    allowed_fleet = AgentSettings.model_validate({"permissions": {"allow_dangerous": True}})
    spec, note = resolve_spec(task(permission_mode="dangerous"), allowed_fleet, "s", "/py")
    assert spec.permission_flags[0] == "--dangerously-skip-permissions" and note

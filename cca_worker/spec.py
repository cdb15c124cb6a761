"""Resolve what one run should be from the task row and the agent settings (pure)."""

from __future__ import annotations

from typing import Any

from cca_core.settings import AgentSettings, RoleSettings
from cca_worker.argv import AgentSpec
from cca_worker.permissions import plan_permissions


def role_settings(agents: AgentSettings, role: str | None) -> RoleSettings:
    return agents.roles.get(role or "", RoleSettings())


def resolve_spec(task: Any, agents: AgentSettings, session_id: str) -> tuple[AgentSpec, str | None]:
    """Return the AgentSpec and a note to record (dangerous mode). Raises Invalid."""
    role = role_settings(agents, task.role)
    perms = role.permissions or agents.permissions
    plan = plan_permissions(
        task.permission_mode or perms.mode,
        perms.allowed_tools if task.allowed_tools is None else task.allowed_tools,
        [*perms.denied_tools, *(task.denied_tools or [])],
        allow_network=perms.allow_network,
        allow_dangerous=agents.permissions.allow_dangerous,
    )
    spec = AgentSpec(
        prompt=task.prompt,
        session_id=session_id,
        permission_flags=plan.flags,
        model=task.model or role.model or agents.default_model,
        max_turns=task.max_turns,
        max_budget_usd=task.max_budget_usd,
        json_schema=task.json_schema,
        append_system_prompt=role.append_system_prompt,
        env=plan.env,
    )
    return spec, plan.note


def token_budget(task: Any, agents: AgentSettings) -> int:
    return int(task.token_budget or role_settings(agents, task.role).token_budget
               or agents.token_budget_per_task)


def timeout_seconds(task: Any, agents: AgentSettings) -> int:
    return int(task.timeout_seconds or role_settings(agents, task.role).timeout_seconds
               or agents.default_timeout_seconds)

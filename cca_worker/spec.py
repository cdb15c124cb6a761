"""Resolve what one run should be from the task row and the agent settings (pure).

The row's limits (token budget, timeout) were decided at submission and are used as they
are; its tool rules pass the rule grammar again on their way to argv (``build_argv``)."""

from __future__ import annotations

from typing import Any

from cca_core.settings import AgentSettings
from cca_worker.argv import AgentSpec, bridge_config
from cca_worker.permissions import plan_permissions

BRIDGE_TOOLS = "mcp__cca"


def resolve_spec(
    task: Any, agents: AgentSettings, session_id: str, python: str, bridge_token: str | None = None
) -> tuple[AgentSpec, str | None]:
    """Return the AgentSpec and a note to record (dangerous mode). Raises Invalid.

    With ``agents.bridge_url`` set, agents outside sandbox mode get the cca MCP bridge (run by
    ``python``) so they can hand sub-tasks to the fleet as children of this task.
    """
    role = agents.role(task.role)
    perms = agents.permissions_of(task.role)
    mode = task.permission_mode or perms.mode
    allowed = list(perms.allowed_tools if task.allowed_tools is None else task.allowed_tools)
    bridge = bool(agents.bridge_url) and mode != "sandbox"
    plan = plan_permissions(
        mode,
        [*allowed, BRIDGE_TOOLS] if bridge else allowed,
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
        project_settings=role.project_settings,
        mcp_config=(bridge_config(python, agents.bridge_url, str(task.id), bridge_token)
                    if bridge else None),
        env=plan.env,
    )
    return spec, plan.note

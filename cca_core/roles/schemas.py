"""What the roles API answers, shared by the API, the CLI and the MCP bridge."""

from __future__ import annotations

from pydantic import BaseModel

from cca_core.settings import AgentSettings


class RoleView(BaseModel):
    """A role as a task of it runs: its own fields, or the fleet's defaults where it sets none;
    ``prompt`` is left out of lists."""

    name: str
    description: str
    model: str | None
    token_budget: int
    timeout_seconds: int
    permission_mode: str
    allowed_tools: list[str]
    denied_tools: list[str]
    prompt: str | None = None


class RolePage(BaseModel):
    roles: list[RoleView]


def role_view(agents: AgentSettings, name: str, *, with_prompt: bool = True) -> RoleView:
    role, permissions = agents.role(name), agents.permissions_of(name)
    return RoleView(name=name, description=role.description,
                    model=role.model or agents.default_model,
                    token_budget=agents.token_budget_of(name), timeout_seconds=agents.timeout_of(name),
                    permission_mode=permissions.mode, allowed_tools=list(permissions.allowed_tools),
                    denied_tools=list(permissions.denied_tools),
                    prompt=role.append_system_prompt if with_prompt else None)

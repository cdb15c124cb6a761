"""Role endpoints: the agent roles a task may name, with what each runs with."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app
from pydantic import BaseModel

from cca_api.operations import operation
from cca_core.errors import NotFound
from cca_core.settings import AgentSettings

bp = Blueprint("roles", __name__, url_prefix="/api/v1/roles")


class RoleView(BaseModel):
    """A role as a task of it runs: its own fields, or the fleet's defaults where it sets none."""

    name: str
    description: str
    model: str | None
    token_budget: int
    timeout_seconds: int
    permission_mode: str
    allowed_tools: list[str]
    denied_tools: list[str]
    prompt: str | None


class RolePage(BaseModel):
    roles: list[RoleView]


def role_view(agents: AgentSettings, name: str) -> RoleView:
    role, permissions = agents.role(name), agents.permissions_of(name)
    return RoleView(name=name, description=role.description,
                    model=role.model or agents.default_model,
                    token_budget=agents.token_budget_of(name), timeout_seconds=agents.timeout_of(name),
                    permission_mode=permissions.mode, allowed_tools=list(permissions.allowed_tools),
                    denied_tools=list(permissions.denied_tools), prompt=role.append_system_prompt)


def _agents() -> AgentSettings:
    return current_app.extensions["cca"].settings.agents


@bp.get("")
@operation("The agent roles a task may name", RolePage)
def index() -> dict[str, Any]:
    agents = _agents()
    return RolePage(roles=[role_view(agents, name) for name in sorted(agents.roles)]).model_dump()


@bp.get("/<name>")
@operation("One role, with its prompt", RoleView, errors=(404,))
def show(name: str) -> dict[str, Any]:
    agents = _agents()
    if name not in agents.roles:
        raise NotFound(f"role {name[:64]} does not exist; the roles are: {', '.join(sorted(agents.roles))}")
    return role_view(agents, name).model_dump()

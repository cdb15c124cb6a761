"""Role endpoints: the agent roles a task may name, with what each runs with."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from cca_api.operations import operation
from cca_core.errors import NotFound
from cca_core.roles.schemas import RolePage, RoleView, role_view
from cca_core.settings import AgentSettings

bp = Blueprint("roles", __name__, url_prefix="/api/v1/roles")


def _agents() -> AgentSettings:
    return current_app.extensions["cca"].settings.agents


@bp.get("")
@operation("The agent roles a task may name", RolePage)
def index() -> dict[str, Any]:
    agents = _agents()
    listed = [role_view(agents, name, with_prompt=False) for name in sorted(agents.roles)]
    return RolePage(roles=listed).model_dump()


@bp.get("/<name>")
@operation("One role, with its prompt", RoleView, errors=(404,))
def show(name: str) -> dict[str, Any]:
    agents = _agents()
    if name not in agents.roles:
        raise NotFound(f"role {name[:64]} does not exist; the roles are: {', '.join(sorted(agents.roles))}")
    return role_view(agents, name).model_dump()

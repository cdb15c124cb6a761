"""A task may narrow the permissions of its role; only an admin key may widen them. Every
key's task stays within the key's limits, and a non-admin's within its role's limits
(cca_core.key_limits)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cca_api.auth import Principal
from cca_core.errors import Forbidden
from cca_core.key_limits import limited_values
from cca_core.rules import MODE_ORDER, translate_rule
from cca_core.schemas import TaskCreate
from cca_core.settings import AgentSettings


def permitted_values(body: TaskCreate, principal: Principal, agents: AgentSettings) -> dict[str, Any]:
    """The task row ``principal`` may create from ``body``: within its key's limits and, for
    a non-admin, within its role. Raises Invalid or Forbidden naming the field."""
    values = limited_values(body, principal.limits, agents, agents.queues[0],
                            within_role=not principal.is_admin)
    if not principal.is_admin:
        check_narrowing(values, agents)
    return values


def check_narrowing(task: Mapping[str, Any], agents: AgentSettings) -> None:
    """Raise Forbidden (naming the field) when a task row asks for more than its role grants."""
    role = agents.roles.get(task["role"] or "")
    perms = (role.permissions if role else None) or agents.permissions
    mode, allowed_tools = task["permission_mode"], task["allowed_tools"]
    if mode and MODE_ORDER[mode] > MODE_ORDER[perms.mode]:
        raise Forbidden(f"permission_mode {mode} is wider than {perms.mode}, "
                        "which this role grants; only an admin key may widen permissions",
                        field="permission_mode")
    if allowed_tools is None:
        return
    granted = {translate_rule(rule) for rule in perms.allowed_tools}
    wider = [rule for rule in allowed_tools if translate_rule(rule) not in granted]
    if wider:
        raise Forbidden(f"allowed_tools {', '.join(wider)} go beyond what this role grants; only "
                        "an admin key may widen permissions", field="allowed_tools")

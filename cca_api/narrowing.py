"""A task may narrow the permissions of its role; only an admin key may widen them. Every
key's task stays within the key's limits (cca_core.key_limits)."""

from __future__ import annotations

from typing import Any

from cca_api.auth import Principal
from cca_core.errors import Forbidden
from cca_core.key_limits import cap_values, narrow_body
from cca_core.rules import MODE_ORDER, translate_rule
from cca_core.schemas import TaskCreate
from cca_core.settings import AgentSettings
from cca_core.submission import task_values


def permitted_values(body: TaskCreate, principal: Principal, agents: AgentSettings) -> dict[str, Any]:
    """The task row ``principal`` may create from ``body``: within its key's limits and, for
    a non-admin, within its role. Raises Invalid or Forbidden naming the field."""
    default_queue = agents.queues[0]
    narrowed = narrow_body(body, principal.limits, agents, default_queue)
    values = task_values(narrowed, agents, default_queue)  # what the fleet refuses comes first
    if not principal.is_admin:
        check_narrowing(narrowed, agents)
    return cap_values(values, principal.limits)


def check_narrowing(body: TaskCreate, agents: AgentSettings) -> None:
    """Raise Forbidden (naming the field) when the task asks for more than its role grants."""
    role = agents.roles.get(body.role or "")
    perms = (role.permissions if role else None) or agents.permissions
    if body.permission_mode and MODE_ORDER[body.permission_mode] > MODE_ORDER[perms.mode]:
        raise Forbidden(f"permission_mode {body.permission_mode} is wider than {perms.mode}, "
                        "which this role grants; only an admin key may widen permissions",
                        field="permission_mode")
    if body.allowed_tools is None:
        return
    granted = {translate_rule(rule) for rule in perms.allowed_tools}
    wider = [rule for rule in body.allowed_tools if translate_rule(rule) not in granted]
    if wider:
        raise Forbidden(f"allowed_tools {', '.join(wider)} go beyond what this role grants; only "
                        "an admin key may widen permissions", field="allowed_tools")

"""A task may narrow the permissions of its role; only an admin key may widen them."""

from __future__ import annotations

from cca_core.errors import Forbidden
from cca_core.rules import MODE_ORDER, translate_rule
from cca_core.schemas import TaskCreate
from cca_core.settings import AgentSettings


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

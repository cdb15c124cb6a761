"""A task may narrow the permissions of its role; only an admin key may widen them. Every
key's task stays within the key's limits, a non-admin's within its role's limits
(cca_core.access.key_limits), and a task an agent submits through its bridge gets at most its
parent's permissions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cca_api.auth import Principal
from cca_core.access.key_limits import limited_values
from cca_core.errors import Forbidden
from cca_core.models import Task
from cca_core.rules import MODE_ORDER, translate_rule
from cca_core.settings import AgentSettings
from cca_core.tasks.schemas import TaskCreate, TaskSpec


def permitted_values(body: TaskSpec, principal: Principal, agents: AgentSettings) -> dict[str, Any]:
    """The task row ``principal`` may create from ``body``: within its key's limits and, for
    a non-admin, within its role. Raises Invalid or Forbidden naming the field."""
    values = limited_values(body, principal.limits, agents, agents.queues[0],
                            within_role=not principal.is_admin)
    if not principal.is_admin:
        check_narrowing(values, agents)
    return values


def check_narrowing(task: Mapping[str, Any], agents: AgentSettings) -> None:
    """Raise Forbidden (naming the field) when a task row asks for more than its role grants."""
    perms = agents.permissions_of(task["role"])
    _check_within(task, perms.mode, perms.allowed_tools, "this role grants; only an admin key "
                  "may widen permissions")


def inherit_from_parent(body: TaskCreate, parent: Task, agents: AgentSettings) -> dict[str, Any]:
    """The permission fields of a child an agent submits: at most its parent's effective
    mode and allow list (asked for, or else inherited), the parent's denials added to its own.
    Raises Forbidden (naming the field) when the child asks for more."""
    perms = agents.permissions_of(parent.role)
    mode = parent.permission_mode or perms.mode
    allowed = perms.allowed_tools if parent.allowed_tools is None else parent.allowed_tools
    _check_within(body.model_dump(), mode, allowed, "its parent task has")
    return {"permission_mode": body.permission_mode or mode,
            "allowed_tools": body.allowed_tools if body.allowed_tools is not None else allowed,
            "denied_tools": list(dict.fromkeys([*perms.denied_tools, *(parent.denied_tools or []),
                                                *(body.denied_tools or [])]))}


def _check_within(task: Mapping[str, Any], mode: str, allowed: list[str], grantor: str) -> None:
    asked_mode, asked_tools = task["permission_mode"], task["allowed_tools"]
    if asked_mode and MODE_ORDER[asked_mode] > MODE_ORDER[mode]:
        raise Forbidden(f"permission_mode {asked_mode} is wider than {mode}, which "
                        f"{grantor}", field="permission_mode")
    if asked_tools is None:
        return
    granted = {translate_rule(rule) for rule in allowed}
    wider = [rule for rule in asked_tools if translate_rule(rule) not in granted]
    if wider:
        raise Forbidden(f"allowed_tools {', '.join(wider)} go beyond what {grantor}",
                        field="allowed_tools")

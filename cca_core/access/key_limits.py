"""What a managed API key may ask of a task: queues, agent roles, models, permission modes, caps
on budgets and timeouts, and the directories its tasks may work in.

Limits narrow; they never widen what the fleet or the task's role grants. An agent role may set
the same limits (``agents.roles.<name>``) on every non-admin task of that role. A field the key may
not have is refused naming it (the queue and cwd with 422 like any bad queue or cwd, the rest
with 403); a field the task leaves out gets what the key allows (its first queue, role or model,
its narrowest mode, at most its caps). Config-file keys have no limits. Pure code: no I/O.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from cca_core.errors import Forbidden, Invalid
from cca_core.rules import MODE_ORDER
from cca_core.settings import AgentSettings, PermissionMode
from cca_core.tasks.schemas import TaskSpec
from cca_core.tasks.submission import task_values
from cca_core.tasks.workspace import check_cwd

NameItem = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
ModelItem = Annotated[str, Field(min_length=1, max_length=200)]
RootItem = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^/")]
CAPS = (("token_budget", "max_token_budget"), ("timeout_seconds", "max_timeout_seconds"),
        ("max_budget_usd", "max_budget_usd"))


class KeyLimits(BaseModel):
    """A key's limits; ``None`` leaves the field as the fleet and the role allow."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_queues: list[NameItem] | None = Field(default=None, min_length=1, max_length=50)
    allowed_roles: list[NameItem] | None = Field(default=None, min_length=1, max_length=50)
    allowed_models: list[ModelItem] | None = Field(default=None, min_length=1, max_length=50)
    allowed_permission_modes: list[PermissionMode] | None = Field(default=None, min_length=1)
    max_token_budget: int | None = Field(default=None, ge=1, le=1_000_000_000)
    max_timeout_seconds: int | None = Field(default=None, ge=1, le=7 * 86400)
    max_budget_usd: float | None = Field(default=None, gt=0, le=100_000)
    cwd_roots: list[RootItem] | None = Field(
        default=None, min_length=1, max_length=50,
        description="Directories (within agents.allowed_roots) a task's cwd must be under.")


NO_LIMITS = KeyLimits()


def check_limits(limits: KeyLimits, agents: AgentSettings) -> None:
    """Refuse (Invalid naming the field and index) limits that name what the fleet lacks: a
    queue no worker consumes, a role not configured, a cwd root outside agents.allowed_roots."""
    for index, queue in enumerate(limits.allowed_queues or []):
        if queue not in agents.queues:
            raise Invalid(f"queue {queue} is not configured (agents.queues: "
                          f"{', '.join(agents.queues)})", field=f"allowed_queues[{index}]")
    for index, role in enumerate(limits.allowed_roles or []):
        if role not in agents.roles:
            raise Invalid(f"role {role} is not configured (agents.roles)",
                          field=f"allowed_roles[{index}]")
    for index, root in enumerate(limits.cwd_roots or []):
        try:
            check_cwd(root, agents.allowed_roots)
        except Invalid as exc:
            raise Invalid(exc.message, field=f"cwd_roots[{index}]") from None


def limited_values(body: TaskSpec, limits: KeyLimits, agents: AgentSettings,
                   default_queue: str, *, within_role: bool) -> dict[str, Any]:
    """The task row a key may create from ``body`` (see the module docstring); with
    ``within_role`` (any key but an admin) also within the limits of the task's role.

    Raises Invalid (queue, cwd, or a bad body) or Forbidden naming the field.
    """
    narrowed = narrow_body(body, limits, agents, default_queue)
    if within_role and (role := role_limits(agents, narrowed.role)) != NO_LIMITS:
        narrowed = narrow_body(narrowed, role, agents, default_queue, whose=f"role {narrowed.role}")
        narrowed = narrow_body(narrowed, limits, agents, default_queue)  # what the role chose too
    else:
        role = NO_LIMITS
    return cap_values(cap_values(task_values(narrowed, agents, default_queue), limits), role)


def role_limits(agents: AgentSettings, role: str | None) -> KeyLimits:
    """The limits ``agents.roles.<role>`` sets on its non-admin tasks (none for no role)."""
    settings = agents.role(role)
    return KeyLimits.model_construct(  # validated with the config (Settings)
        allowed_queues=settings.allowed_queues, allowed_models=settings.allowed_models,
        max_token_budget=settings.max_token_budget, max_timeout_seconds=settings.max_timeout_seconds,
        max_budget_usd=settings.max_budget_usd)


def narrow_body(body: TaskSpec, limits: KeyLimits, agents: AgentSettings,
                default_queue: str, whose: str = "this key") -> TaskSpec:
    """The body with what it leaves out chosen within ``limits`` (of ``whose``, for the
    messages). Raises Invalid or Forbidden naming the field it gives beyond them."""
    for field, cap_name in CAPS:
        value, cap = getattr(body, field), getattr(limits, cap_name)
        if cap is not None and value is not None and value > cap:
            raise Forbidden(f"{field} {value} is over the cap of {whose} ({cap_name} = {cap})",
                            field=field)
    if limits.cwd_roots is not None and body.cwd is not None:
        check_cwd(body.cwd, limits.cwd_roots)
    if limits.cwd_roots is not None and body.repo is not None:
        check_cwd(body.repo, limits.cwd_roots, field="repo")
    return body.model_copy(update=_fill(body, limits, agents, default_queue, whose))


def cap_values(values: dict[str, Any], limits: KeyLimits) -> dict[str, Any]:
    """Lower the defaults the fleet filled in (budget, timeout, USD) to the key's caps."""
    capped = dict(values)
    for field, cap_name in CAPS:
        cap = getattr(limits, cap_name)
        if cap is not None:
            capped[field] = cap if values[field] is None else min(values[field], cap)
    return capped


def _fill(body: TaskSpec, limits: KeyLimits, agents: AgentSettings, default_queue: str,
          whose: str) -> dict[str, Any]:
    """Check the fields the body gives against the lists; choose allowed ones for those it
    leaves out."""
    updates: dict[str, Any] = {}
    if limits.allowed_queues is not None:
        if body.queue is not None and body.queue not in limits.allowed_queues:
            raise Invalid(f"queue {body.queue} is not allowed for {whose} (allowed: "
                          f"{', '.join(limits.allowed_queues)})", field="queue")
        if body.queue is None and default_queue not in limits.allowed_queues:
            updates["queue"] = limits.allowed_queues[0]
    if limits.allowed_roles is not None:
        _refuse("role", body.role, limits.allowed_roles, whose)
        if body.role is None:
            updates["role"] = limits.allowed_roles[0]
    role = agents.role(updates.get("role", body.role))
    if limits.allowed_models is not None:
        _refuse("model", body.model, limits.allowed_models, whose)
        default_model = role.model or agents.default_model
        if body.model is None and default_model not in limits.allowed_models:
            updates["model"] = limits.allowed_models[0]
    if limits.allowed_permission_modes is not None:
        modes = limits.allowed_permission_modes
        _refuse("permission_mode", body.permission_mode, list(modes), whose)
        role_mode = ((role and role.permissions) or agents.permissions).mode
        if body.permission_mode is None and role_mode not in modes:
            updates["permission_mode"] = _closest_mode(modes, role_mode)
    return updates


def _refuse(field: str, value: str | None, allowed: list[str], whose: str) -> None:
    if value is not None and value not in allowed:
        raise Forbidden(f"{field} {value} is not allowed for {whose} (allowed: "
                        f"{', '.join(allowed)})", field=field)


def _closest_mode(modes: list[PermissionMode], role_mode: PermissionMode) -> PermissionMode:
    """The widest allowed mode no wider than the role's; else the narrowest allowed (which the
    role check then refuses for a non-admin)."""
    narrower = [mode for mode in modes if MODE_ORDER[mode] <= MODE_ORDER[role_mode]]
    if narrower:
        return max(narrower, key=MODE_ORDER.__getitem__)
    return min(modes, key=MODE_ORDER.__getitem__)

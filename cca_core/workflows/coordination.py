"""Coordinated tasks (the seed's main flow), run as a workflow whose steps are the task's
children:

1. ``plan``: the coordinator role answers the task with a delegation plan, through
   ``--json-schema`` (:data:`PLAN_SCHEMA`).
2. cca checks the plan (:func:`check_plan`: roles, names, dependencies, the fleet's limits on
   children, depth and budget). A plan that fails gets one ``plan-repair`` round with the
   errors; a second bad plan fails the task with them.
3. Each delegation becomes a step (a child of the task) on any free worker, in parallel where
   their ``depends_on`` allow; ``summary`` (the coordinator role again) depends on all of them
   and gets the plan and every result.
4. The task ends with the workflow: its result is the summary, then each delegation's result.

The task itself never runs an agent: it holds no slot while its children work
(``status: running``, ``waiting_for: children``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, ValidationError

from cca_core.errors import Invalid
from cca_core.rules import MODE_ORDER, translate_rule
from cca_core.settings import AgentSettings, PermissionSettings
from cca_core.workflows.graph import check_graph, unique_names
from cca_core.workflows.schemas import StepName

if TYPE_CHECKING:
    from cca_core.models import Task

COORDINATOR = "coordinator"
PLAN, REPAIR, SUMMARY = "plan", "plan-repair", "summary"
WAITING_FOR_CHILDREN = "children"

PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["delegate", "direct", "error"]},
        "summary": {"type": "string", "description": "How the work is split."},
        "answer": {"type": "string", "description": "With direct: the whole answer."},
        "error": {"type": "string", "description": "With error: why it cannot be done."},
        "summary_instructions": {"type": "string",
                                 "description": "What the final summary should focus on."},
        "delegations": {"type": "array", "items": {
            "type": "object",
            "properties": {
                "name": {"type": "string"}, "role": {"type": "string"},
                "task": {"type": "string"}, "context": {"type": "string"},
                "depends_on": {"type": "array", "items": {"type": "string"}},
                "token_budget": {"type": "integer"},
            },
            "required": ["name", "role", "task"],
        }},
    },
    "required": ["action"],
}


class Delegation(BaseModel):
    name: str = StepName
    role: str
    task: str = Field(min_length=1, max_length=100_000)
    context: str = Field(default="", max_length=100_000)
    depends_on: list[str] = Field(default_factory=list)
    token_budget: int | None = Field(default=None, ge=1)


class Plan(BaseModel):
    action: Literal["delegate", "direct", "error"]
    summary: str = ""
    answer: str = ""
    error: str = ""
    summary_instructions: str = Field(default="", max_length=20_000)
    delegations: list[Delegation] = Field(default_factory=list)


def check_plan(raw: Any, agents: AgentSettings, *, depth: int,
               token_budget: int | None) -> Plan:
    """The plan, once it is one cca can run. Raises Invalid whose message lists every problem
    found (the repair round shows them to the coordinator)."""
    try:
        plan = Plan.model_validate(raw)
    except ValidationError as exc:
        raise Invalid("; ".join(f"{'.'.join(map(str, e['loc'])) or 'plan'}: {e['msg']}"
                                for e in exc.errors()), field="plan") from None
    if plan.action != "delegate":
        return plan
    problems = []
    specialists = sorted(set(agents.roles) - {COORDINATOR})
    if not plan.delegations:
        problems.append("delegations: a delegate plan needs at least one")
    if len(plan.delegations) > agents.max_children_per_task:
        problems.append(f"delegations: {len(plan.delegations)} is over the limit of "
                        f"{agents.max_children_per_task} (agents.max_children_per_task)")
    if depth + 1 > agents.max_depth:
        problems.append(f"a child would be at depth {depth + 1}, over agents.max_depth = "
                        f"{agents.max_depth}")
    for index, item in enumerate(plan.delegations):
        if item.role not in specialists:
            problems.append(f"delegations[{index}].role: {item.role} is not a specialist; use "
                            f"one of {', '.join(specialists)}")
    asked = sum(item.token_budget or 0 for item in plan.delegations)
    if token_budget is not None and asked > token_budget:
        problems.append(f"delegations: their token budgets add up to {asked}, over the task's "
                        f"{token_budget}")
    for check in (lambda: unique_names([d.name for d in plan.delegations], field="delegations"),
                  lambda: check_graph({d.name: d.depends_on for d in plan.delegations},
                                      field="delegations")):
        try:
            check()
        except Invalid as exc:
            problems.append(f"{exc.field}: {exc.message}")
    if problems:
        raise Invalid("; ".join(problems), field="plan")
    return plan


def plan_prompt(parent: Task, refused: tuple[Any, str] | None = None) -> str:
    """The prompt of the planning step: the task, and for the repair round the plan that was
    refused and why."""
    if refused is None:
        return parent.prompt
    plan, errors = refused
    return (f"{parent.prompt}\n\n## Your previous plan was refused\n\n{errors}\n\n"
            f"The refused plan:\n{json.dumps(plan, ensure_ascii=False)}\n\n"
            "Answer with a corrected plan.")


def child_prompt(item: Delegation) -> str:
    return f"{item.task}\n\n## Context\n\n{item.context}" if item.context else item.task


def summary_prompt(parent: Task, plan: Plan) -> str:
    """The aggregator's prompt: the coordinator's instructions for it lead, then the task and
    the plan; the runner appends each delegation's result."""
    lines = [plan.summary_instructions] if plan.summary_instructions else []
    lines += ["You write the final answer of a coordinated task. The specialists' results "
              "follow: combine them into one answer to the task below (what was found and "
              "done, what failed, what remains). Do not redo their work.",
              f"## The task\n\n{parent.prompt}",
              f"## The plan\n\n{plan.summary}\n\n" + "\n".join(
                  f"- {d.name} ({d.role}): {d.task[:300]}" for d in plan.delegations)]
    return "\n\n".join(lines)


def bounded_permissions(parent: Task, role: PermissionSettings,
                        agents: AgentSettings) -> dict[str, Any]:
    """A child's permission fields: its role's, never wider than the coordinated task's own
    (its fields, or else the fleet's defaults: the coordinator role's read-only tools bound
    the planning step, not the tree)."""
    mode = parent.permission_mode or agents.permissions.mode
    granted = agents.permissions.allowed_tools if parent.allowed_tools is None \
        else parent.allowed_tools
    within = {translate_rule(rule) for rule in granted}
    return {
        "permission_mode": min(role.mode, mode, key=MODE_ORDER.__getitem__),
        "allowed_tools": [rule for rule in role.allowed_tools if translate_rule(rule) in within],
        "denied_tools": list(dict.fromkeys([*role.denied_tools, *agents.permissions.denied_tools,
                                            *(parent.denied_tools or [])])),
    }


def child_values(parent: Task, role: str, prompt: str, agents: AgentSettings, *,
                 token_budget: int | None = None, json_schema: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The row of one step of a coordinated task: a child of it, within its permissions."""
    return {
        "prompt": prompt, "role": role, "parent_id": parent.id, "depth": parent.depth + 1,
        "priority": parent.priority, "queue": parent.queue, "cwd": parent.cwd,
        "model": None, "json_schema": json_schema, "meta": {},
        "token_budget": min(token_budget or agents.token_budget_of(role), parent.token_budget),
        "timeout_seconds": agents.timeout_of(role),
        **bounded_permissions(parent, agents.permissions_of(role), agents),
    }


def result_of(summary: Task | None, children: Sequence[Task], plan: Plan | None) -> str:
    """The coordinated task's result: the summary, then each delegation's result."""
    parts = []
    if summary is not None and summary.result:
        parts.append(f"## Summary\n\n{summary.result}")
    elif plan is not None and plan.action == "direct":
        parts.append(plan.answer or plan.summary)
    for child in children:
        parts.append(f"## {child.step} ({child.role}): {child.status}\n\n{child.result or ''}")
    return "\n\n".join(parts)


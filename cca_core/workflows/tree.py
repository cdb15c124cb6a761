"""A coordinated task in Postgres: start its workflow with the planning step, expand the plan
into its children and the summary, end the task with the workflow
(:mod:`cca_core.workflows.coordination` holds the rules)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, update

from cca_core.errors import Invalid
from cca_core.models import Task, Workflow
from cca_core.settings import AgentSettings
from cca_core.tasks import store as tasks
from cca_core.tasks.status import TaskStatus, changing
from cca_core.workflows import store
from cca_core.workflows.coordination import (
    COORDINATOR,
    PLAN,
    PLAN_SCHEMA,
    REPAIR,
    SUMMARY,
    WAITING_FOR_CHILDREN,
    Plan,
    check_plan,
    child_prompt,
    child_values,
    plan_prompt,
    result_of,
    summary_prompt,
)

RUNNING = TaskStatus.RUNNING


@dataclass
class Expansion:
    """What the plan changed: steps that may start now, or the end of the workflow."""

    ready: list[Task] = field(default_factory=list)
    ended: TaskStatus | None = None
    error: tuple[str, str] | None = None


# What a coordinated task's row starts with: running, waiting for its children; it never runs
# an agent itself, so it holds no slot.
COORDINATED: dict[str, Any] = {"status": RUNNING, "waiting_for": WAITING_FOR_CHILDREN}


def start(connection: Connection, parent: Task, agents: AgentSettings) -> list[Task]:
    """Make the workflow of a coordinated task just inserted (``COORDINATED``), with its
    planning step; its token_budget and max_budget_usd cap the tree. Returns the steps to
    send."""
    workflow, ready = store.create_workflow(connection, {
        "name": f"coordinate-{str(parent.id)[:8]}", "failure_policy": "continue",
        "token_budget": parent.token_budget, "budget_usd": parent.max_budget_usd,
        "parent_task_id": parent.id, "owner": parent.owner, "created_by": parent.created_by,
    }, [_planner(parent, PLAN, agents)])
    started = connection.execute(
        update(Task).where(Task.id == parent.id)
        .values(workflow_id=workflow.id, started_at=func.now()).returning(Task.started_at)).one()
    parent.workflow_id, parent.started_at = workflow.id, started.started_at
    return ready


def _planner(parent: Task, name: str, agents: AgentSettings,
             refused: tuple[Any, str] | None = None) -> store.NewStep:
    return store.NewStep(name, (), child_values(parent, COORDINATOR,
                                                plan_prompt(parent, refused), agents,
                                                json_schema=PLAN_SCHEMA))


def expand(connection: Connection, workflow: Workflow, steps: Sequence[Task],
           agents: AgentSettings) -> Expansion:
    """Once the planning step succeeded: run its plan (children and summary), or give it one
    repair round, or end the workflow (a refusal, a direct answer, a plan bad twice)."""
    by_name = {task.step: task for task in steps}
    planner = by_name.get(REPAIR) or by_name.get(PLAN)
    if planner is None or planner.status != TaskStatus.SUCCEEDED:
        return Expansion()  # still planning, or the planning failed: the workflow ends failed
    parent = tasks.get_task(connection, str(workflow.parent_task_id))
    try:
        plan = check_plan(planner.structured_output, agents, depth=parent.depth,
                          token_budget=workflow.token_budget)
    except Invalid as exc:
        if planner.step == PLAN:
            refused = (planner.structured_output, exc.message)
            return Expansion(ready=store.add_steps(connection, workflow, [
                _planner(parent, REPAIR, agents, refused)]))
        return Expansion(ended=TaskStatus.FAILED, error=(
            "invalid_plan", f"the coordinator's plan was refused twice: {exc.message}"))
    store.set_plan(connection, workflow.id, plan.model_dump(mode="json"))
    workflow.plan = plan.model_dump(mode="json")
    if plan.action == "error":
        return Expansion(ended=TaskStatus.FAILED, error=(
            "coordinator_refused", plan.error or "the coordinator gave no reason"))
    if plan.action == "direct":
        return Expansion(ended=TaskStatus.SUCCEEDED)
    return Expansion(ready=store.add_steps(connection, workflow, _delegated(parent, plan, agents),
                                           existing={PLAN: planner.id}))


def _delegated(parent: Task, plan: Plan, agents: AgentSettings) -> list[store.NewStep]:
    children = [store.NewStep(item.name, item.depends_on,
                              child_values(parent, item.role, child_prompt(item), agents,
                                           token_budget=item.token_budget))
                for item in plan.delegations]
    summary = store.NewStep(SUMMARY, [item.name for item in plan.delegations],
                            child_values(parent, COORDINATOR, summary_prompt(parent, plan), agents),
                            run_when="ended")
    return [*children, summary]


def finish_parent(connection: Connection, workflow: Workflow, status: TaskStatus,
                  steps: Sequence[Task], error: tuple[str, str] | None) -> None:
    """End the coordinated task with its workflow: the summary and every child's result."""
    by_name = {task.step: task for task in steps}
    children = [task for task in steps if task.step not in (PLAN, REPAIR, SUMMARY)]
    plan = Plan.model_validate(workflow.plan) if workflow.plan else None
    connection.execute(
        update(Task).where(Task.id == workflow.parent_task_id,
                           Task.status == changing(RUNNING, status))
        .values(status=status, result=result_of(by_name.get(SUMMARY), children, plan),
                structured_output=workflow.plan, waiting_for=None, finished_at=func.now(),
                error_code=error[0] if error else None,
                error_message=error[1] if error else None))

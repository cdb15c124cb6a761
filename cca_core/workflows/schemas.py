"""Request and response shapes of the workflow API, shared by the API, the CLI and the MCP
bridge. Each step is a task (:class:`~cca_core.tasks.schemas.TaskSpec`) with a name and the
names of the steps it depends on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cca_core.tasks.schemas import TaskError, TaskSpec, Usage, usage_of
from cca_core.tasks.status import TaskStatus
from cca_core.workflows.scheduling import FailurePolicy, RunWhen

StepName = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
MAX_STEPS = 1000  # the schema's bound; agents.max_workflow_steps is the fleet's


class StepCreate(TaskSpec):
    """One step of a workflow: a task, its name, and the steps whose results it needs."""

    name: str = StepName
    depends_on: list[str] = Field(default_factory=list, max_length=MAX_STEPS,
                                  description="Names of the steps that must succeed first.")
    run_when: RunWhen = Field(
        default="succeeded",
        description="succeeded: it runs when every dependency succeeded; ended: when every "
                    "one ended, whatever its status (a report or a clean-up).")


class WorkflowCreate(BaseModel):
    """The body of ``POST /api/v1/workflows``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    failure_policy: FailurePolicy = Field(
        default="fail_fast",
        description="fail_fast: a failed step stops the others; continue: only the steps "
                    "that depend on it are cancelled.")
    token_budget: int | None = Field(default=None, ge=1, le=10_000_000_000,
                                     description="Tokens all steps together may use.")
    budget_usd: float | None = Field(default=None, gt=0, le=1_000_000,
                                     description="Dollars all steps together may spend.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    tasks: list[StepCreate] = Field(min_length=1, max_length=MAX_STEPS)


class StepView(BaseModel):
    """A step as the workflow shows it: its task's state, usage and cost."""

    name: str
    task_id: str
    role: str | None
    status: TaskStatus
    depends_on: list[str]
    run_when: RunWhen
    waiting_for: str | None
    worker: str | None
    attempts: int
    error: TaskError | None
    usage: Usage
    cost_usd: float
    started_at: datetime | None
    finished_at: datetime | None


class WorkflowView(BaseModel):
    """A workflow: its graph with each step's status, usage and cost, and the totals."""

    id: str
    name: str
    status: TaskStatus
    failure_policy: FailurePolicy
    token_budget: int | None
    budget_usd: float | None
    parent_task_id: str | None
    plan: dict[str, Any] | None
    error: TaskError | None
    metadata: dict[str, Any]
    usage: Usage = Field(description="All steps together.")
    cost_usd: float = Field(description="All steps together.")
    tasks: list[StepView]
    created_at: datetime
    finished_at: datetime | None


class WorkflowSummary(BaseModel):
    """A workflow in a list: no steps."""

    id: str
    name: str
    status: TaskStatus
    parent_task_id: str | None
    created_at: datetime
    finished_at: datetime | None


class WorkflowPage(BaseModel):
    workflows: list[WorkflowSummary]
    next_cursor: str | None


def _error(code: str | None, message: str | None) -> TaskError | None:
    return TaskError(code=code, message=message or "") if code else None


def workflow_view(workflow: Any, tasks: list[Any]) -> WorkflowView:
    """Present a ``workflows`` row and its steps' ``tasks`` rows (in step order)."""
    names = {task.id: task.step for task in tasks}
    steps = [StepView(
        name=task.step, task_id=str(task.id), role=task.role, status=task.status,
        depends_on=[names.get(dep, str(dep)) for dep in task.depends_on or ()],
        run_when=task.run_when,
        waiting_for=task.waiting_for, worker=task.worker, attempts=task.attempts or 0,
        error=_error(task.error_code, task.error_message), usage=usage_of(task),
        cost_usd=float(task.cost_usd or 0), started_at=task.started_at,
        finished_at=task.finished_at) for task in tasks]
    total = Usage(**{name: sum(getattr(step.usage, name) for step in steps)
                     for name in Usage.model_fields})
    return WorkflowView(
        id=str(workflow.id), name=workflow.name, status=workflow.status,
        failure_policy=workflow.failure_policy, token_budget=workflow.token_budget,
        budget_usd=workflow.budget_usd,
        parent_task_id=str(workflow.parent_task_id) if workflow.parent_task_id else None,
        plan=workflow.plan, error=_error(workflow.error_code, workflow.error_message),
        metadata=workflow.meta or {}, usage=total,
        cost_usd=round(sum(step.cost_usd for step in steps), 6), tasks=steps,
        created_at=workflow.created_at, finished_at=workflow.finished_at)


def workflow_summary(workflow: Any) -> WorkflowSummary:
    return WorkflowSummary(
        id=str(workflow.id), name=workflow.name, status=workflow.status,
        parent_task_id=str(workflow.parent_task_id) if workflow.parent_task_id else None,
        created_at=workflow.created_at, finished_at=workflow.finished_at)

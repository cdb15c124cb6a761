"""Request and response shapes of the task API, shared by the API, the CLI and the MCP bridge."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from cca_core.names import Priority, branch_of
from cca_core.retries import RetryRules
from cca_core.rules import ModelName, ToolRule
from cca_core.settings import PermissionMode
from cca_core.tasks.forecast import Estimate
from cca_core.tasks.status import PARKED, TaskStatus

Name = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
MAX_RULES = 200
# The prompt and the schema each travel as one argv token, and Linux caps one at 128 KiB.
MAX_ARGUMENT_BYTES = 120_000


def _fits_one_argument(value: Any) -> Any:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if len(text.encode()) > MAX_ARGUMENT_BYTES:
        raise ValueError(f"at most {MAX_ARGUMENT_BYTES} bytes in UTF-8 (it reaches claude as one "
                         "command-line argument)")
    return value


class MemoryRecall(BaseModel):
    """How many memories (cca_core.memory) to put before the prompt, as quoted data."""

    model_config = ConfigDict(extra="forbid")
    k: int = Field(ge=0, le=20)


class TaskSpec(BaseModel):
    """What an agent task is: the body of ``POST /api/v1/tasks`` but its parent, and each
    step of a workflow."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=100_000, description="What the agent should do.")
    role: str | None = Name
    model: ModelName | None = None
    priority: Priority = "normal"
    token_budget: int | None = Field(default=None, ge=1, le=1_000_000_000)
    timeout_seconds: int | None = Field(default=None, ge=1, le=7 * 86400)
    max_turns: int | None = Field(default=None, ge=1, le=10_000)
    max_budget_usd: float | None = Field(default=None, gt=0, le=100_000)
    permission_mode: PermissionMode | None = None
    allowed_tools: list[ToolRule] | None = Field(default=None, max_length=MAX_RULES)
    denied_tools: list[ToolRule] | None = Field(default=None, max_length=MAX_RULES)
    cwd: str | None = Field(default=None, min_length=1, max_length=4096)
    repo: str | None = Field(
        default=None, min_length=1, max_length=4096,
        description="A git repository (absolute path, inside agents.allowed_roots): the agent "
                    "works in a clone of its own on branch cca/<task id>, and the branch's "
                    "commits and diff are recorded when it ends (GET /api/v1/tasks/{id}/diff).")
    base: str | None = Field(
        default=None, min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_./@^~-]+$",
        description="With repo: the branch, tag or commit the task's branch starts from "
                    "(default: the repository's HEAD).")
    push: bool = Field(
        default=False, description="With repo: push the task's branch to the repository's "
                                   "remote when it ends (with the worker's git credentials).")
    json_schema: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    queue: str | None = Name
    memory: MemoryRecall | None = Field(
        default=None, description="The k memories most relevant to the prompt go before it, "
                                  "marked as notes from earlier tasks (default: the role's, "
                                  "else memory.recall_k).")
    retries: RetryRules | None = Field(
        default=None, description="What follows a failed run, by failure class (rate_limited, "
                                  "overloaded, server_error, crashed, tool_failure, …): attempts "
                                  "(runs in all), backoff_seconds, max_backoff_seconds; over its "
                                  "role's and the fleet's [retries]. auth_failed and billing "
                                  "are never retried.")

    _one_argument = field_validator("prompt", "json_schema")(_fits_one_argument)

    @field_validator("repo")
    @classmethod
    def _repo_or_cwd(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("cwd") is not None:
            raise ValueError("give repo or cwd, not both: a repository task works in a clone")
        return value

    @field_validator("base")
    @classmethod
    def _a_ref_of_the_repo(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (value.startswith(("-", ".", "/")) or ".." in value):
            raise ValueError("must be a branch, tag or commit name")
        if value is not None and info.data.get("repo") is None:
            raise ValueError("goes with repo")
        return value

    @field_validator("push")
    @classmethod
    def _pushes_a_repo(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("repo") is None:
            raise ValueError("goes with repo")
        return value


class TaskCreate(TaskSpec):
    """The body of ``POST /api/v1/tasks``."""

    parent_id: UUID | None = Field(
        default=None,
        description="The task that submits this one (set by the MCP bridge inside fleet tasks).")
    mode: Literal["single", "coordinate"] = Field(
        default="single",
        description="coordinate: a coordinator plans sub-tasks for specialists, which run in "
                    "parallel as the task's children, and a summary combines their results; "
                    "token_budget and max_budget_usd then cap the whole tree (so does the "
                    "coordinator role).")


class TaskContinue(BaseModel):
    """The body of ``POST /api/v1/tasks/{id}/continue``: a follow-up that forks the finished
    task's session; role, model, permissions, cwd, queue and retries come from it."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=100_000, description="What to do next.")
    priority: Priority | None = None
    token_budget: int | None = Field(default=None, ge=1, le=1_000_000_000)
    timeout_seconds: int | None = Field(default=None, ge=1, le=7 * 86400)
    max_turns: int | None = Field(default=None, ge=1, le=10_000)
    max_budget_usd: float | None = Field(default=None, gt=0, le=100_000)
    metadata: dict[str, Any] = Field(default_factory=dict)

    _one_argument = field_validator("prompt")(_fits_one_argument)


class Usage(BaseModel):
    """Tokens the task's agents used, summed over its attempts (a task re-run after its worker
    died counts both runs); live while it runs."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0


class TaskError(BaseModel):
    code: str
    message: str


class TaskView(BaseModel):
    """A task as the API returns it."""

    id: str
    status: TaskStatus
    prompt: str
    role: str | None
    model: str | None
    priority: Priority
    queue: str
    token_budget: int | None
    timeout_seconds: int | None
    max_turns: int | None
    max_budget_usd: float | None
    permission_mode: str | None
    allowed_tools: list[str] | None
    denied_tools: list[str] | None
    cwd: str | None
    json_schema: dict[str, Any] | None
    metadata: dict[str, Any]
    parent_id: str | None
    depth: int
    workflow_id: str | None
    step: str | None = Field(description="Its name in its workflow.")
    depends_on: list[str] = Field(description="The ids of the tasks it waits for.")
    waiting_for: str | None = Field(
        description="What a queued task waits for before it may start: dependencies (the "
                    "steps it depends on), children (a coordinated task's plan), retry (its "
                    "last run failed and it runs again at retry_at; error says why), "
                    "credential (every model credential is at its max_agents; it starts when "
                    "one is given back) or usage_window (every credential is rate-limited; "
                    "retry_at is when the first resets).")
    retry_at: datetime | None = Field(
        default=None, description="When a parked task (retry, credential, usage_window) is "
                                  "sent again at the latest.")
    continues: str | None = Field(
        default=None, description="The finished task whose session this follow-up forks.")
    schedule_id: str | None = Field(default=None, description="The schedule that made it, if any.")
    scheduled_for: datetime | None = Field(
        default=None, description="The fire of its schedule it runs for (a late or caught-up "
                                  "fire is earlier than created_at).")
    repo: str | None = Field(default=None, description="The repository it works on, in a clone.")
    base: str | None = Field(default=None, description="What its branch starts from.")
    push: bool = False
    branch: str | None = Field(default=None, description="Its branch in the repository.")
    children: list[str] | None = Field(
        default=None, description="Its children's ids (first 100; in GET of one task only).")
    estimate: Estimate | None = Field(
        default=None, description="In the answer to a submission: what recent successes of its "
                                  "role and model took (p50, p90), when there are 3 or more.")
    warnings: list[str] = Field(
        default_factory=list, description="In the answer to a submission: where its estimate "
                                          "exceeds its own token budget, USD budget or timeout.")
    result: str | None
    structured_output: Any | None
    error: TaskError | None
    usage: Usage
    cost_usd: float
    num_turns: int
    session_id: str | None
    permission_denials: list[Any]
    worker: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TaskPage(BaseModel):
    tasks: list[TaskView]
    next_cursor: str | None


class AttemptView(BaseModel):
    """One run of a task."""

    attempt: int
    worker: str | None
    started_at: datetime
    finished_at: datetime | None = Field(description="None while it runs, or if its worker died.")
    status: str | None
    error: TaskError | None
    usage: Usage
    cost_usd: float
    num_turns: int
    session_id: str | None
    retry_at: datetime | None = Field(description="When the task ran again after this run.")


class AttemptList(BaseModel):
    attempts: list[AttemptView]


class EventView(BaseModel):
    id: int
    attempt: int
    type: str
    subtype: str | None
    data: dict[str, Any]
    created_at: datetime


class EventPage(BaseModel):
    events: list[EventView]
    next_after: int | None


def usage_of(task: Any) -> Usage:
    """The usage columns of a ``tasks`` row."""
    return Usage(input_tokens=task.input_tokens or 0, output_tokens=task.output_tokens or 0,
                 cache_read_input_tokens=task.cache_read_input_tokens or 0,
                 cache_creation_input_tokens=task.cache_creation_input_tokens or 0)


def task_view(task: Any, children: Sequence[Any] | None = None) -> TaskView:
    """Present a ``tasks`` row (cca_core.models.Task) as the API shape."""
    error = TaskError(code=task.error_code, message=task.error_message or "") if task.error_code else None
    return TaskView(
        id=str(task.id),
        status=task.status,
        prompt=task.prompt,
        role=task.role,
        model=task.model,
        priority=task.priority,
        queue=task.queue,
        token_budget=task.token_budget,
        timeout_seconds=task.timeout_seconds,
        max_turns=task.max_turns,
        max_budget_usd=task.max_budget_usd,
        permission_mode=task.permission_mode,
        allowed_tools=task.allowed_tools,
        denied_tools=task.denied_tools,
        cwd=task.cwd,
        json_schema=task.json_schema,
        metadata=task.meta or {},
        parent_id=str(task.parent_id) if task.parent_id else None,
        depth=task.depth or 0,
        workflow_id=str(task.workflow_id) if task.workflow_id else None,
        step=task.step,
        depends_on=[str(dep) for dep in task.depends_on or ()],
        waiting_for=task.waiting_for,
        retry_at=task.retry_at if task.waiting_for in PARKED else None,
        continues=str(task.continues) if task.continues else None,
        schedule_id=str(task.schedule_id) if task.schedule_id else None,
        scheduled_for=task.scheduled_for,
        repo=task.repo, base=task.base, push=bool(task.push),
        branch=branch_of(str(task.id)) if task.repo else None,
        children=None if children is None else [str(child) for child in children],
        result=task.result,
        structured_output=task.structured_output,
        error=error,
        usage=usage_of(task),
        cost_usd=float(task.cost_usd or 0),
        num_turns=task.num_turns or 0,
        session_id=task.session_id,
        permission_denials=task.permission_denials or [],
        worker=task.worker,
        attempts=task.attempts or 0,
        created_at=task.created_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
    )


def event_view(event: Any) -> EventView:
    return EventView(id=event.id, attempt=event.attempt, type=event.type, subtype=event.subtype,
                     data=event.data, created_at=event.created_at)


def attempt_view(attempt: Any) -> AttemptView:
    """Present a ``task_attempts`` row."""
    error = (TaskError(code=attempt.error_code, message=attempt.error_message or "")
             if attempt.error_code else None)
    return AttemptView(attempt=attempt.attempt, worker=attempt.worker, started_at=attempt.started_at,
                       finished_at=attempt.finished_at, status=attempt.status, error=error,
                       usage=usage_of(attempt), cost_usd=float(attempt.cost_usd or 0),
                       num_turns=attempt.num_turns or 0, session_id=attempt.session_id,
                       retry_at=attempt.retry_at)

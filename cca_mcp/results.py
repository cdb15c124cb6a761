"""What the bridge's tools return: small pydantic models (structured content for Claude)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cca_core.tasks.status import TERMINAL_STATUSES

PROMPT_PREVIEW = 200


class TaskInfo(BaseModel):
    """A fleet task as Claude needs it: status, result or error, and what it cost."""

    id: str
    status: str
    done: bool
    prompt: str
    role: str | None = None
    result: str | None = None
    structured_output: Any | None = None
    error: str | None = None
    num_turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    worker: str | None = None
    attempts: int = 0
    parent_id: str | None = None
    permission_denials: int = 0
    created_at: str | None = None
    finished_at: str | None = None
    note: str | None = None

    @classmethod
    def from_api(cls, task: dict[str, Any], note: str | None = None) -> TaskInfo:
        error = task.get("error")
        prompt = task["prompt"]
        return cls(
            id=task["id"], status=task["status"],
            done=task["status"] in TERMINAL_STATUSES,
            prompt=prompt if len(prompt) <= PROMPT_PREVIEW else prompt[:PROMPT_PREVIEW] + "…",
            role=task.get("role"), result=task.get("result"),
            structured_output=task.get("structured_output"),
            error=f"{error['code']}: {error['message']}" if error else None,
            num_turns=task.get("num_turns", 0),
            input_tokens=task["usage"]["input_tokens"], output_tokens=task["usage"]["output_tokens"],
            cost_usd=task.get("cost_usd", 0.0), worker=task.get("worker"),
            attempts=task.get("attempts", 0), parent_id=task.get("parent_id"),
            permission_denials=len(task.get("permission_denials") or []),
            created_at=task.get("created_at"), finished_at=task.get("finished_at"), note=note,
        )


class TaskList(BaseModel):
    tasks: list[TaskInfo]
    next_cursor: str | None = None


class FleetStatus(BaseModel):
    version: str
    workers_online: int
    slots_busy: int
    slots_total: int
    queues: dict[str, int]
    tasks: dict[str, int]


class StatusAnswer(BaseModel):
    """Either one task (asked by id) or the whole fleet."""

    task: TaskInfo | None = None
    fleet: FleetStatus | None = None


class Worker(BaseModel):
    hostname: str
    slots_busy: int
    slots_total: int
    queues: list[str]
    paused_for_budget: bool


class Agents(BaseModel):
    workers: list[Worker]


class EventSummary(BaseModel):
    task_id: str
    status: str
    total_events: int
    lines: list[str]

"""The MCP server: tools over the cca HTTP API (submit, wait, status, cancel, list, events)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError

from cca_core.infra.api_client import ApiError, CcaClient
from cca_core.schedules.schemas import SchedulePage, ScheduleView
from cca_mcp.errors import explain
from cca_mcp.models import (
    Agents,
    EventSummary,
    FleetStatus,
    StatusAnswer,
    TaskInfo,
    TaskList,
    Worker,
)
from cca_mcp.summary import summarize

T = TypeVar("T")
PARENT_ENV = "CCA_TASK_ID"  # set by a cca worker for the bridge it gives a fleet agent
MAX_WAIT_S = 3600
POLL_S = 1.0
INSTRUCTIONS = (
    "cca runs Claude Code agents on a fleet of workers. Hand a self-contained sub-task to "
    "cca_task (it returns an id at once, or waits up to wait_seconds), keep working, then "
    "collect it with cca_wait. Use cca_status, cca_tasks, cca_events to follow work and "
    "cca_cancel to stop it. cca_schedule_create makes a recurring job (cron or interval); "
    "cca_schedules lists them and cca_schedule_delete removes one."
)


def make_server(client: CcaClient, parent_id: str | None = None) -> MCPServer:
    """Build the bridge around an API client. ``parent_id`` (default: $CCA_TASK_ID) is
    recorded on every task submitted, so fleet agents that submit agents form a tree."""
    parent = (parent_id if parent_id is not None else os.environ.get(PARENT_ENV)) or None
    server = MCPServer("cca", instructions=INSTRUCTIONS)

    async def call(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await anyio.to_thread.run_sync(lambda: func(*args, **kwargs))
        except ApiError as exc:
            raise ToolError(explain(exc, client.base_url)) from None

    async def follow(task_id: str, timeout_s: float, ctx: Context) -> TaskInfo:
        deadline = time.monotonic() + min(max(timeout_s, 0), MAX_WAIT_S)
        started = time.monotonic()
        task = await call(client.task, task_id)
        while task["status"] in ("queued", "running") and time.monotonic() < deadline:
            await ctx.report_progress(time.monotonic() - started, timeout_s, message=progress(task))
            await anyio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
            task = await call(client.task, task_id)
        await ctx.report_progress(time.monotonic() - started, timeout_s, message=progress(task))
        if task["status"] in ("queued", "running"):
            return TaskInfo.from_api(task, note=f"still {task['status']} after {timeout_s:g}s; "
                                     "call cca_wait again to keep waiting")
        return TaskInfo.from_api(task)

    @server.tool()
    async def cca_task(
        prompt: str,
        ctx: Context,
        role: str | None = None,
        model: str | None = None,
        priority: Literal["low", "normal", "high", "critical"] = "normal",
        token_budget: int | None = None,
        timeout_seconds: int | None = None,
        allowed_tools: list[str] | None = None,
        cwd: str | None = None,
        json_schema: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        wait_seconds: float = 0,
    ) -> TaskInfo:
        """Hand a self-contained task to another Claude Code agent on the cca fleet.

        Use it for work that can run on its own while you continue: reviews, test fixes,
        refactors, investigations. The prompt must contain everything the agent needs.
        With wait_seconds = 0 (default) it returns at once with the task id; collect the
        result later with cca_wait. With wait_seconds > 0 it waits up to that long.
        """
        body = given(prompt=prompt, role=role, model=model, priority=priority,
                     token_budget=token_budget, timeout_seconds=timeout_seconds,
                     allowed_tools=allowed_tools, cwd=cwd, json_schema=json_schema,
                     metadata=metadata, parent_id=parent)
        task = await call(client.submit, body)
        if wait_seconds > 0:
            return await follow(task["id"], wait_seconds, ctx)
        return TaskInfo.from_api(task, note="submitted; collect the result with cca_wait")

    @server.tool()
    async def cca_wait(task_id: str, ctx: Context, timeout_seconds: float = 300) -> TaskInfo:
        """Wait for a fleet task to finish, up to timeout_seconds (at most 3600).

        Reports progress (status, turns, tokens, cost) while it runs. Returns the finished
        task with its result or error, or its current state if the time runs out.
        """
        return await follow(task_id, timeout_seconds, ctx)

    @server.tool()
    async def cca_status(task_id: str | None = None) -> StatusAnswer:
        """Status of one fleet task (with task_id, in `task`), or of the whole fleet (without,
        in `fleet`): workers online, busy and total agent slots, queue depths, tasks by status."""
        if task_id:
            return StatusAnswer(task=TaskInfo.from_api(await call(client.task, task_id)))
        status = await call(client.status)
        workers = status["workers"]
        return StatusAnswer(fleet=FleetStatus(
            version=status["version"], workers_online=workers["online"],
            slots_busy=workers["slots_busy"], slots_total=workers["slots_total"],
            queues=status["queues"], tasks=status["tasks"]))

    @server.tool()
    async def cca_cancel(task_id: str) -> TaskInfo:
        """Cancel a fleet task: a queued task never runs; a running agent is stopped within
        seconds. Fails if the task already finished."""
        return TaskInfo.from_api(await call(client.cancel, task_id))

    @server.tool()
    async def cca_tasks(
        status: Literal["queued", "running", "succeeded", "failed", "cancelled", "timed_out",
                        "budget_exceeded"] | None = None,
        role: str | None = None,
        parent_id: str | None = None,
        limit: int = 20,
    ) -> TaskList:
        """Recent fleet tasks, newest first, optionally filtered by status, role or parent."""
        page = await call(client.tasks, status=status, role=role, parent_id=parent_id,
                          limit=max(1, min(limit, 200)))
        return TaskList(tasks=[TaskInfo.from_api(task) for task in page["tasks"]],
                        next_cursor=page["next_cursor"])

    @server.tool()
    async def cca_events(task_id: str, last: int = 30) -> EventSummary:
        """What a fleet agent did, summarised: tool calls, tool errors and permission
        denials, API retries, text and the final result (the last `last` lines)."""
        task = await call(client.task, task_id)
        events: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await call(client.events, task_id, after=after)
            events += [event["data"] for event in page["events"]]
            if page["next_after"] is None:
                break
            after = page["next_after"]
        lines = summarize(events)
        return EventSummary(task_id=task_id, status=task["status"], total_events=len(events),
                            lines=lines[-max(1, min(last, 500)):])

    @server.tool()
    async def cca_agents() -> Agents:
        """Workers online and their agent slots (busy / total), queues, budget pauses."""
        data = await call(client.workers)
        return Agents(workers=[Worker(**{key: worker[key] for key in Worker.model_fields})
                               for worker in data["workers"]])

    @server.tool()
    async def cca_activity() -> TaskList:
        """What the fleet is doing right now: the running tasks with turns, tokens and cost."""
        page = await call(client.tasks, status="running", limit=100)
        return TaskList(tasks=[TaskInfo.from_api(task) for task in page["tasks"]])

    @server.tool()
    async def cca_schedule_create(
        name: str,
        prompt: str,
        cron: str | None = None,
        timezone: str | None = None,
        interval_seconds: int | None = None,
        role: str | None = None,
        model: str | None = None,
        priority: Literal["low", "normal", "high", "critical"] = "normal",
        token_budget: int | None = None,
        timeout_seconds: int | None = None,
        allowed_tools: list[str] | None = None,
        cwd: str | None = None,
        overlap: Literal["skip", "allow", "cancel_previous"] = "skip",
        catchup: Literal["skip_missed", "run_once"] = "skip_missed",
        expires_seconds: int | None = None,
    ) -> ScheduleView:
        """Create a recurring fleet job that submits `prompt` as a task on a schedule.

        Give either `cron` (5 fields, e.g. "0 7 * * 1-5" = weekdays at 07:00, with an IANA
        `timezone` such as "Europe/Berlin"; default UTC) or `interval_seconds`. `overlap`:
        what to do when the previous run is still going (skip, allow, cancel_previous);
        `catchup`: fires missed while no beat ran (skip_missed, or run_once);
        `expires_seconds`: drop a fire that could not start within this long.
        """
        task = given(prompt=prompt, role=role, model=model, priority=priority,
                     token_budget=token_budget, timeout_seconds=timeout_seconds,
                     allowed_tools=allowed_tools, cwd=cwd)
        body = given(name=name, cron=cron, timezone=timezone, interval_seconds=interval_seconds,
                     overlap=overlap, catchup=catchup, expires_seconds=expires_seconds, task=task)
        return ScheduleView(**await call(client.create_schedule, body))

    @server.tool()
    async def cca_schedules() -> SchedulePage:
        """The fleet's recurring jobs: timing, policies, next and last fire, why a fire was
        last skipped."""
        return SchedulePage(**await call(client.schedules))

    @server.tool()
    async def cca_schedule_delete(schedule: str) -> str:
        """Delete a recurring job, by id or by name. The tasks it already created stay."""
        found = await call(client.schedules, schedule)
        ids = [item["id"] for item in found["schedules"]] or [schedule]
        if len(ids) > 1:
            raise ToolError(f"{len(ids)} schedules are named {schedule}: give the id")
        await call(client.delete_schedule, ids[0])
        return f"schedule {schedule} deleted"

    @server.resource("cca://tasks/{task_id}", mime_type="application/json")
    def task_resource(task_id: str) -> str:
        """A fleet task with its result, as JSON."""
        try:
            return json.dumps(client.task(task_id))
        except ApiError as exc:
            raise ResourceError(explain(exc, client.base_url)) from None

    return server


def given(**fields: Any) -> dict[str, Any]:
    """The fields Claude set: unset (None) ones are left to the API's defaults."""
    return {name: value for name, value in fields.items() if value is not None}


def progress(task: dict[str, Any]) -> str:
    usage = task["usage"]
    return (f"{task['status']} · turns {task['num_turns']} · tokens "
            f"{usage['input_tokens'] + usage['output_tokens']} · ${task['cost_usd']:.4f}")

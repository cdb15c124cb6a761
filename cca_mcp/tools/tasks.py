"""Tools over fleet tasks: submit, wait, continue, cancel, list, what an agent did; tasks as
resources."""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from cca_core.infra.api_client import ApiError
from cca_core.tasks.status import TaskStatus
from cca_mcp.api import BridgeApi, given
from cca_mcp.errors import explain
from cca_mcp.results import EventSummary, TaskInfo, TaskList
from cca_mcp.summary import summarize
from cca_mcp.task_fields import TaskFields, with_task_fields

MAX_LISTED = 200
MAX_SUMMARY_LINES = 500


def register(server: MCPServer, api: BridgeApi) -> None:
    client = api.client

    @server.tool()
    @with_task_fields
    async def cca_task(
        prompt: str,
        ctx: Context,
        fields: TaskFields,
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
        body = {"prompt": prompt, **fields.body(),
                **given(json_schema=json_schema, metadata=metadata, parent_id=api.parent)}
        task = await api.call(client.submit, body)
        if wait_seconds > 0:
            return await api.follow(task["id"], wait_seconds, ctx)
        return TaskInfo.from_api(task, note="submitted; collect the result with cca_wait")

    @server.tool()
    async def cca_wait(task_id: str, ctx: Context, timeout_seconds: float = 300) -> TaskInfo:
        """Wait for a fleet task to finish, up to timeout_seconds (at most 3600).

        Reports progress (status, turns, tokens, cost) while it runs. Returns the finished
        task with its result or error, or its current state if the time runs out.
        """
        return await api.follow(task_id, timeout_seconds, ctx)

    @server.tool()
    async def cca_continue(task_id: str, prompt: str, ctx: Context, wait_seconds: float = 0) -> TaskInfo:
        """Continue a finished fleet task with a follow-up prompt ("also fix X", "now add
        tests"): a new task that resumes a fork of its conversation, with its files, on any
        worker. The original task stays as it ended. wait_seconds as in cca_task."""
        task = await api.call(client.continue_task, task_id, {"prompt": prompt})
        if wait_seconds > 0:
            return await api.follow(task["id"], wait_seconds, ctx)
        return TaskInfo.from_api(task, note=f"continues {task_id}; collect the result with cca_wait")

    @server.tool()
    async def cca_cancel(task_id: str) -> TaskInfo:
        """Cancel a fleet task: a queued task never runs; a running agent is stopped within
        seconds. Fails if the task already finished."""
        return TaskInfo.from_api(await api.call(client.cancel, task_id))

    @server.tool()
    async def cca_tasks(
        status: TaskStatus | None = None,
        role: str | None = None,
        parent_id: str | None = None,
        limit: int = 20,
    ) -> TaskList:
        """Recent fleet tasks, newest first, optionally filtered by status, role or parent."""
        page = await api.call(client.tasks, status=status, role=role, parent_id=parent_id,
                              limit=max(1, min(limit, MAX_LISTED)))
        return TaskList(tasks=[TaskInfo.from_api(task) for task in page["tasks"]],
                        next_cursor=page["next_cursor"])

    @server.tool()
    async def cca_events(task_id: str, last: int = 30) -> EventSummary:
        """What a fleet agent did, summarised: tool calls, tool errors and permission
        denials, API retries, text and the final result (the last `last` lines)."""
        task = await api.call(client.task, task_id)
        events: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await api.call(client.events, task_id, after=after)
            events += [event["data"] for event in page["events"]]
            if page["next_after"] is None:
                break
            after = page["next_after"]
        lines = summarize(events)
        return EventSummary(task_id=task_id, status=task["status"], total_events=len(events),
                            lines=lines[-max(1, min(last, MAX_SUMMARY_LINES)):])

    @server.resource("cca://tasks/{task_id}", mime_type="application/json")
    def task_resource(task_id: str) -> str:
        """A fleet task with its result, as JSON."""
        try:
            return json.dumps(client.task(task_id))
        except ApiError as exc:
            raise ResourceError(explain(exc, client.base_url)) from None

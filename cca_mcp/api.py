"""The bridge's side of the cca HTTP API: calls off the event loop, API failures as tool errors,
and following a task until it finishes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from cca_core.infra.api_client import ApiError, CcaClient
from cca_core.tasks.status import TERMINAL_STATUSES
from cca_mcp.errors import explain
from cca_mcp.results import TaskInfo

T = TypeVar("T")
MAX_WAIT_S = 3600
POLL_S = 1.0


class BridgeApi:
    """The API client of one bridge and the task its agent runs (``parent``), recorded on every
    task it submits so that fleet agents which submit agents form a tree."""

    def __init__(self, client: CcaClient, parent: str | None) -> None:
        self.client = client
        self.parent = parent

    async def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``func(*args, **kwargs)`` on a thread; an API failure becomes a sentence for Claude."""
        try:
            return await anyio.to_thread.run_sync(lambda: func(*args, **kwargs))
        except ApiError as exc:
            raise ToolError(explain(exc, self.client.base_url)) from None

    async def follow(self, task_id: str, timeout_s: float, ctx: Context) -> TaskInfo:
        """The task once it finished, or as it is after ``timeout_s`` (at most an hour),
        reporting progress meanwhile."""
        task = await self.poll(self.client.task, task_id, ended=_task_ended, describe=progress,
                               timeout_s=timeout_s, ctx=ctx)
        if not _task_ended(task):
            return TaskInfo.from_api(task, note=f"still {task['status']} after {timeout_s:g}s; "
                                     "call cca_wait again to keep waiting")
        return TaskInfo.from_api(task)

    async def poll(self, get: Callable[[str], dict[str, Any]], key: str, *,
                   ended: Callable[[dict[str, Any]], bool],
                   describe: Callable[[dict[str, Any]], str], timeout_s: float,
                   ctx: Context) -> dict[str, Any]:
        """``get(key)`` once ``ended`` says so, or as it is after ``timeout_s`` (at most an
        hour), reporting ``describe`` of it as progress meanwhile."""
        deadline = time.monotonic() + min(max(timeout_s, 0), MAX_WAIT_S)
        started = time.monotonic()
        found = await self.call(get, key)
        while not ended(found) and time.monotonic() < deadline:
            await ctx.report_progress(time.monotonic() - started, timeout_s, message=describe(found))
            await anyio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
            found = await self.call(get, key)
        await ctx.report_progress(time.monotonic() - started, timeout_s, message=describe(found))
        return found


def _task_ended(task: dict[str, Any]) -> bool:
    return task["status"] in TERMINAL_STATUSES


def given(**fields: Any) -> dict[str, Any]:
    """The fields Claude set: unset (None) ones are left to the API's defaults."""
    return {name: value for name, value in fields.items() if value is not None}


def progress(task: dict[str, Any]) -> str:
    usage = task["usage"]
    return (f"{task['status']} · turns {task['num_turns']} · tokens "
            f"{usage['input_tokens'] + usage['output_tokens']} · ${task['cost_usd']:.4f}")

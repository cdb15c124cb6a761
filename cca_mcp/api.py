"""The bridge's side of the cca HTTP API: calls off the event loop, API failures as tool errors,
and following a task until it finishes (from its live stream)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from cca_core.infra.api_client import ApiError, CcaClient
from cca_core.tasks.status import TERMINAL_STATUSES
from cca_core.tokens.pricing import estimate_cost
from cca_core.tokens.usage import UsageMeter
from cca_mcp.errors import explain
from cca_mcp.results import TaskInfo

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_WAIT_S = 3600
POLL_S = 1.0
REPORT_S = 0.2  # how often a wait hands on what the stream brought


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
        reporting progress from its live stream meanwhile."""
        deadline = time.monotonic() + min(max(timeout_s, 0), MAX_WAIT_S)
        started = time.monotonic()
        watch = StreamWatch(self.client, task_id)
        try:
            while not watch.ended.is_set() and time.monotonic() < deadline:
                for message in watch.take():
                    await ctx.report_progress(time.monotonic() - started, timeout_s, message=message)
                await anyio.sleep(min(REPORT_S, max(0.0, deadline - time.monotonic())))
        finally:
            watch.stop()
        if watch.error is not None:
            raise ToolError(explain(watch.error, self.client.base_url))
        for message in watch.take():
            await ctx.report_progress(time.monotonic() - started, timeout_s, message=message)
        # The stream ended with the task, or the time is up, or it broke: then poll the rest.
        task = await self.poll(self.client.task, task_id, ended=_task_ended, describe=progress,
                               timeout_s=max(0.0, deadline - time.monotonic()), ctx=ctx,
                               total=timeout_s)
        if not _task_ended(task):
            return TaskInfo.from_api(task, note=f"still {task['status']} after {timeout_s:g}s; "
                                     "call cca_wait again to keep waiting")
        return TaskInfo.from_api(task)

    async def poll(self, get: Callable[[str], dict[str, Any]], key: str, *,
                   ended: Callable[[dict[str, Any]], bool],
                   describe: Callable[[dict[str, Any]], str], timeout_s: float,
                   ctx: Context, total: float | None = None) -> dict[str, Any]:
        """``get(key)`` once ``ended`` says so, or as it is after ``timeout_s`` (at most an
        hour), reporting ``describe`` of it as progress (out of ``total``, by default
        ``timeout_s``) meanwhile."""
        total = timeout_s if total is None else total
        deadline = time.monotonic() + min(max(timeout_s, 0), MAX_WAIT_S)
        started = time.monotonic()
        found = await self.call(get, key)
        while not ended(found) and time.monotonic() < deadline:
            await ctx.report_progress(time.monotonic() - started, total, message=describe(found))
            await anyio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
            found = await self.call(get, key)
        await ctx.report_progress(time.monotonic() - started, total, message=describe(found))
        return found


class StreamWatch:
    """Reads a task's live stream on a thread (``CcaClient.follow``) and keeps a progress line
    per event: its status, and the run's turns, tokens and cost so far."""

    def __init__(self, client: CcaClient, task_id: str) -> None:
        self.ended = threading.Event()
        self.error: ApiError | None = None
        self._client, self._task_id = client, task_id
        self._messages: list[str] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        threading.Thread(target=self._read, name=f"follow-{task_id}", daemon=True).start()

    def take(self) -> list[str]:
        with self._lock:
            messages, self._messages = self._messages, []
        return messages

    def stop(self) -> None:
        """Leave the stream (at its next event or heartbeat)."""
        self._stopped.set()

    def _read(self) -> None:
        meter, task = UsageMeter(), None
        try:
            for event in self._client.follow(self._task_id):
                if self._stopped.is_set():
                    return
                if event.event == "status":
                    task = event.data
                elif event.event == "event":
                    meter.observe(event.data["data"])
                if task is not None:
                    with self._lock:
                        self._messages.append(live_progress(task, meter))
        except ApiError as exc:
            self.error = exc
        except Exception as exc:  # noqa: BLE001 - a reader thread: the wait polls instead
            log.warning("following task %s: %s", self._task_id, exc)
        finally:
            self.ended.set()


def live_progress(task: dict[str, Any], meter: UsageMeter) -> str:
    """A progress line: the task's status and, while its run streams, what it spent so far."""
    if task["status"] in TERMINAL_STATUSES or not meter.message_count:
        return progress(task)
    tokens = meter.totals
    return (f"{task['status']} · turns {meter.message_count} · tokens "
            f"{tokens.input_tokens + tokens.output_tokens} · "
            f"${estimate_cost(tokens, meter.models):.4f}")


def _task_ended(task: dict[str, Any]) -> bool:
    return task["status"] in TERMINAL_STATUSES


def given(**fields: Any) -> dict[str, Any]:
    """The fields Claude set: unset (None) ones are left to the API's defaults."""
    return {name: value for name, value in fields.items() if value is not None}


def progress(task: dict[str, Any]) -> str:
    usage = task["usage"]
    return (f"{task['status']} · turns {task['num_turns']} · tokens "
            f"{usage['input_tokens'] + usage['output_tokens']} · ${task['cost_usd']:.4f}")

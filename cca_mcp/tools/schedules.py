"""Tools over recurring jobs: create, list, delete."""

from __future__ import annotations

from typing import Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from cca_core.schedules.schemas import SchedulePage, ScheduleView
from cca_mcp.api import BridgeApi, given
from cca_mcp.task_fields import TaskFields, with_task_fields


def register(server: MCPServer, api: BridgeApi) -> None:
    client = api.client

    @server.tool()
    @with_task_fields
    async def cca_schedule_create(
        name: str,
        prompt: str,
        fields: TaskFields,
        cron: str | None = None,
        timezone: str | None = None,
        interval_seconds: int | None = None,
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
        body = given(name=name, cron=cron, timezone=timezone, interval_seconds=interval_seconds,
                     overlap=overlap, catchup=catchup, expires_seconds=expires_seconds,
                     task={"prompt": prompt, **fields.body()})
        return ScheduleView(**await api.call(client.create_schedule, body))

    @server.tool()
    async def cca_schedules() -> SchedulePage:
        """The fleet's recurring jobs: timing, policies, next and last fire, why a fire was
        last skipped."""
        return SchedulePage(**await api.call(client.schedules))

    @server.tool()
    async def cca_schedule_delete(schedule: str) -> str:
        """Delete a recurring job, by id or by name. The tasks it already created stay."""
        found = await api.call(client.schedules, schedule)
        ids = [item["id"] for item in found["schedules"]] or [schedule]
        if len(ids) > 1:
            raise ToolError(f"{len(ids)} schedules are named {schedule}: give the id")
        await api.call(client.delete_schedule, ids[0])
        return f"schedule {schedule} deleted"

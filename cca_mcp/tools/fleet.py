"""Tools over the fleet: its status (or one task's), its workers, what runs now."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from cca_core.roles.schemas import RolePage, RoleView
from cca_core.tasks.status import TaskStatus
from cca_mcp.api import BridgeApi
from cca_mcp.results import (
    Agents,
    FleetStatus,
    StatusAnswer,
    TaskInfo,
    TaskList,
    Worker,
)

RUNNING_SHOWN = 100


def register(server: MCPServer, api: BridgeApi) -> None:
    client = api.client

    @server.tool()
    async def cca_status(task_id: str | None = None) -> StatusAnswer:
        """Status of one fleet task (with task_id, in `task`), or of the whole fleet (without,
        in `fleet`): workers online, busy and total agent slots, queue depths, tasks by status."""
        if task_id:
            return StatusAnswer(task=TaskInfo.from_api(await api.call(client.task, task_id)))
        status = await api.call(client.status)
        workers = status["workers"]
        return StatusAnswer(fleet=FleetStatus(
            version=status["version"], workers_online=workers["online"],
            slots_busy=workers["slots_busy"], slots_total=workers["slots_total"],
            queues=status["queues"], tasks=status["tasks"]))

    @server.tool()
    async def cca_agents() -> Agents:
        """Workers online and their agent slots (busy / total), queues, budget pauses."""
        data = await api.call(client.workers)
        return Agents(workers=[Worker(**{key: worker[key] for key in Worker.model_fields})
                               for worker in data["workers"]])

    @server.tool()
    async def cca_roles(name: str | None = None) -> RolePage:
        """The agent roles a task may name (cca_task's `role`): each role's description, model,
        limits and permission mode; with `name`, that role alone, with its prompt."""
        if name:
            return RolePage(roles=[RoleView(**await api.call(client.role, name))])
        return RolePage(**await api.call(client.roles))

    @server.tool()
    async def cca_activity() -> TaskList:
        """What the fleet is doing right now: the running tasks with turns, tokens and cost."""
        page = await api.call(client.tasks, status=TaskStatus.RUNNING, limit=RUNNING_SHOWN)
        return TaskList(tasks=[TaskInfo.from_api(task) for task in page["tasks"]])

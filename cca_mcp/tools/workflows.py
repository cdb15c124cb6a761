"""Tools over workflows: submit a graph of named tasks, follow it to the end."""

from __future__ import annotations

from typing import Any, Literal

from mcp.server.mcpserver import Context, MCPServer

from cca_core.workflows.schemas import StepCreate, WorkflowView
from cca_mcp.api import BridgeApi, given


def register(server: MCPServer, api: BridgeApi) -> None:
    client = api.client

    @server.tool()
    async def cca_workflow(
        name: str,
        tasks: list[StepCreate],
        ctx: Context,
        failure_policy: Literal["fail_fast", "continue"] = "fail_fast",
        token_budget: int | None = None,
        budget_usd: float | None = None,
        wait_seconds: float = 0,
    ) -> WorkflowView:
        """Run several fleet tasks as one workflow: each task has a `name` and may list in
        `depends_on` the names of tasks that must succeed first; it then starts at once, on
        any free worker, with their results appended to its prompt. Independent tasks run in
        parallel. `failure_policy`: fail_fast stops everything when one fails; continue runs
        what does not depend on it. `token_budget` / `budget_usd` cap the whole workflow.
        With wait_seconds > 0 it waits up to that long for the end; otherwise follow it with
        cca_workflow_status.
        """
        body = given(name=name, failure_policy=failure_policy, token_budget=token_budget,
                     budget_usd=budget_usd,
                     tasks=[task.model_dump(mode="json", exclude_defaults=True) for task in tasks])
        workflow = await api.call(client.submit_workflow, body)
        if wait_seconds > 0:
            workflow = await _follow(api, workflow["id"], wait_seconds, ctx)
        return WorkflowView(**workflow)

    @server.tool()
    async def cca_workflow_status(workflow_id: str, ctx: Context,
                                  wait_seconds: float = 0) -> WorkflowView:
        """A workflow's graph: each task's status, result state, usage and cost, and the
        totals. With wait_seconds > 0, waits up to that long (at most 3600) for it to end,
        reporting progress."""
        return WorkflowView(**await _follow(api, workflow_id, wait_seconds, ctx))


async def _follow(api: BridgeApi, workflow_id: str, timeout_s: float,
                  ctx: Context) -> dict[str, Any]:
    return await api.poll(api.client.workflow, workflow_id, ended=_ended, describe=_progress,
                          timeout_s=timeout_s, ctx=ctx)


def _ended(workflow: dict[str, Any]) -> bool:
    return workflow["status"] != "running"


def _progress(workflow: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for step in workflow["tasks"]:
        counts[step["status"]] = counts.get(step["status"], 0) + 1
    steps = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    return f"{workflow['status']} · {steps} · ${workflow['cost_usd']:.4f}"

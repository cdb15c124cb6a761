"""The MCP server: the bridge's tools over the cca HTTP API (tasks, fleet, schedules)."""

from __future__ import annotations

import os

from mcp.server.mcpserver import MCPServer

from cca_core.infra.api_client import CcaClient
from cca_mcp.api import BridgeApi
from cca_mcp.tools import fleet, knowledge, schedules, tasks, tokens, workflows

PARENT_ENV = "CCA_TASK_ID"  # set by a cca worker for the bridge it gives a fleet agent
INSTRUCTIONS = (
    "cca runs Claude Code agents on a fleet of workers. Hand a self-contained sub-task to "
    "cca_task (it returns an id at once, or waits up to wait_seconds), keep working, then "
    "collect it with cca_wait. Use cca_status, cca_tasks, cca_events to follow work and "
    "cca_cancel to stop it. cca_schedule_create makes a recurring job (cron or interval); "
    "cca_schedules lists them and cca_schedule_delete removes one. cca_roles lists the "
    "roles a task may name. cca_workflow runs named tasks with dependencies as one graph "
    "(independent ones in parallel); cca_workflow_status follows it. cca_search_code finds "
    "code by what it does in codebases indexed with cca_index_codebase; cca_memory_search "
    "recalls what earlier tasks learned and cca_memory_store saves a note for later ones. "
    "cca_token_metrics shows where tokens and dollars went; cca_token_recommendations what to change."
)


def make_server(client: CcaClient, parent_id: str | None = None) -> MCPServer:
    """Build the bridge around an API client. ``parent_id`` (default: $CCA_TASK_ID) is
    recorded on every task submitted, so fleet agents that submit agents form a tree."""
    parent = (parent_id if parent_id is not None else os.environ.get(PARENT_ENV)) or None
    server = MCPServer("cca", instructions=INSTRUCTIONS)
    api = BridgeApi(client, parent)
    for tools in (tasks, fleet, schedules, workflows, knowledge, tokens):
        tools.register(server, api)
    return server

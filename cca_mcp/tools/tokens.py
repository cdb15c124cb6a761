"""Tools over token analytics: where the tokens and dollars went, and what to change."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel

from cca_core.tokens.schemas import Recommendations, TaskTokens, TokenMetrics
from cca_mcp.api import BridgeApi


class TokenAnswer(BaseModel):
    """The fleet's token metrics, or one task's."""

    fleet: TokenMetrics | None = None
    task: TaskTokens | None = None


def register(server: MCPServer, api: BridgeApi) -> None:
    client = api.client

    @server.tool()
    async def cca_token_metrics(days: int = 7, task_id: str | None = None) -> TokenAnswer:
        """Where the fleet's tokens and dollars went (in `fleet`): per day, API key, role and
        model over the last `days` days; with `task_id` (in `task`), that task turn by turn
        (context size, cache hit ratio, output), its tool output by tool, its cost by model."""
        if task_id:
            return TokenAnswer(task=TaskTokens(**await api.call(client.task_tokens, task_id)))
        return TokenAnswer(fleet=TokenMetrics(**await api.call(client.token_metrics, days)))

    @server.tool()
    async def cca_token_recommendations(days: int = 7) -> Recommendations:
        """Concrete findings from the last `days` days of tasks, each with its evidence and
        advice: roles and models with a low cache hit ratio, tools whose output is oversized,
        roles whose runs often end at max turns or on their token budget."""
        return Recommendations(**await api.call(client.token_recommendations, days))

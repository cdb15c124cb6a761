"""The shapes of token analytics, shared by the API, the CLI and the MCP bridge."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

# A tool's output in characters, converted to tokens at about four characters a token (an
# estimate: the CLI reports no per-block counts).
CHARS_PER_TOKEN = 4


class Turn(BaseModel):
    turn: int
    message_id: str
    model: str | None
    context_tokens: int = Field(description="What the model read this turn: new input, cache "
                                            "reads and cache writes.")
    input_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    output_tokens: int
    cache_hit_ratio: float = Field(description="Cache reads over the context.")


class ToolOutput(BaseModel):
    tool: str
    calls: int
    characters: int
    estimated_tokens: int = Field(description=f"characters / {CHARS_PER_TOKEN}")
    largest_characters: int


class ModelCost(BaseModel):
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    cost_usd: float


class TaskTokens(BaseModel):
    """Where one task's tokens went, from its recorded events (every attempt)."""

    task_id: str
    turns: list[Turn]
    context_peak: int
    cache_hit_ratio: float
    tool_outputs: list[ToolOutput]
    cost_by_model: list[ModelCost]


class DayRow(BaseModel):
    day: date
    key: str | None = Field(description="The API key that submitted the tasks.")
    role: str | None
    model: str
    tasks: int
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    cache_hit_ratio: float
    cost_usd: float


class TokenMetrics(BaseModel):
    """Tokens and dollars per day, API key, role and model, from the CLI's own result lines."""

    since: datetime
    days: int
    rows: list[DayRow]
    total_tokens: int
    total_cost_usd: float


FindingKind = Literal["low_cache_hit_ratio", "oversized_tool_output", "max_turns", "budget_always_hit"]


class Finding(BaseModel):
    kind: FindingKind
    subject: str = Field(description="The role, model or tool it is about.")
    evidence: dict[str, float | int | str]
    advice: str


class Recommendations(BaseModel):
    since: datetime
    days: int
    tasks_examined: int
    findings: list[Finding]

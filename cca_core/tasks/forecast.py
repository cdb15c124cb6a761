"""What a task will likely take, from the history of its role and model (pure: the shapes,
and what an estimate says about a task's own limits; cca_core.tasks.history reads it)."""

from __future__ import annotations

from pydantic import BaseModel, Field

MIN_SAMPLES = 3
SAMPLE_TASKS = 200  # the most recent successes of a role and model that are read
SAMPLE_DAYS = 30


class Spread(BaseModel):
    p50: float
    p90: float


class Estimate(BaseModel):
    """What similar tasks took: the recent successes of the same role and model."""

    samples: int = Field(description=f"How many (at most {SAMPLE_TASKS}, of the last {SAMPLE_DAYS} days).")
    duration_seconds: Spread
    tokens: Spread = Field(description="Budget tokens: input, cache writes and output.")
    cost_usd: Spread


def warnings(estimate: Estimate | None, token_budget: int | None, max_budget_usd: float | None,
             timeout_seconds: int | None) -> list[str]:
    """What the estimate says about the task's own limits."""
    if estimate is None:
        return []
    found = []
    for what, spread, limit, unit in (("tokens", estimate.tokens, token_budget, " tokens"),
                                      ("cost", estimate.cost_usd, max_budget_usd, " USD"),
                                      ("duration", estimate.duration_seconds, timeout_seconds, " s")):
        if limit is None:
            continue
        if spread.p50 > limit:
            found.append(f"{what}: half of {estimate.samples} similar tasks needed more than "
                         f"{limit}{unit} (p50 {spread.p50:g}{unit}); it will likely stop short")
        elif spread.p90 > limit:
            found.append(f"{what}: 1 in 10 of {estimate.samples} similar tasks needed more than "
                         f"{limit}{unit} (p90 {spread.p90:g}{unit})")
    return found

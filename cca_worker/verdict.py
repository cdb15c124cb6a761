"""Turn how a run ended into the task's one terminal Outcome (pure).

The exit code is not trusted (notes/claude-cli.md §2): API failures exit 1 with subtype
``success``, SIGINT exits 0 with ``is_error``. The ``result`` line decides; a run the worker
stopped ends with the reason the worker had.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cca_core.retries import Failure
from cca_core.tasks.outcome import Outcome
from cca_core.tokens.pricing import estimate_cost
from cca_core.tokens.usage import Tokens, result_tokens


@dataclass(frozen=True)
class Limits:
    """What one run may use: its wall-clock time, its silence, its tokens; and how often the
    worker renews the lease (and hears of a cancel) meanwhile."""

    timeout_s: float
    stall_s: float
    token_budget: int
    heartbeat_s: float


class StopReason(enum.Enum):
    """Why the worker stopped a run; each value is (task status, error code)."""

    CANCELLED = ("cancelled", "cancelled")
    TIMED_OUT = ("timed_out", "timeout")
    STALLED = ("timed_out", "stalled")
    BUDGET_EXCEEDED = ("budget_exceeded", "token_budget_exceeded")
    QUOTA_EXCEEDED = ("budget_exceeded", "quota_exceeded")  # its key's tokens per day
    # The worker's rolling window is spent: the task is parked for another worker.
    WORKER_BUDGET = ("budget_exceeded", "worker_budget_exceeded")

    @property
    def status(self) -> str:
        return self.value[0]

    @property
    def code(self) -> str:
        return self.value[1]

    def message(self, limits: Limits, used_tokens: int) -> str:
        """The sentence the task's error carries."""
        if self is StopReason.CANCELLED:
            return "cancelled while running"
        if self is StopReason.TIMED_OUT:
            return f"wall-clock timeout of {limits.timeout_s:g}s reached"
        if self is StopReason.STALLED:
            return f"no output for {limits.stall_s:g}s: the agent stalled"
        if self is StopReason.QUOTA_EXCEEDED:
            return "its API key's tokens_per_day quota was crossed while it ran"
        if self is StopReason.WORKER_BUDGET:
            return "its worker's token budget window was spent; it runs again on another worker"
        return f"token budget of {limits.token_budget} crossed ({used_tokens} tokens used)"


@dataclass(frozen=True)
class RunEnd:
    """What the supervisor saw when the process ended."""

    result: Mapping[str, Any] | None
    stop_reason: StopReason | None
    returncode: int
    stderr_tail: str
    tokens: Tokens
    models: frozenset[str]
    denials: list[dict[str, Any]]
    session_id: str | None
    turns_seen: int
    limits: Limits


def decide(end: RunEnd) -> Outcome:
    """Map a finished run to its Outcome."""
    tokens = (result_tokens(end.result) if end.result else None) or end.tokens
    cost = float(end.result.get("total_cost_usd") or 0) if end.result else estimate_cost(
        tokens, end.models)
    common: dict[str, Any] = {
        "input_tokens": tokens.input_tokens, "output_tokens": tokens.output_tokens,
        "cache_read_input_tokens": tokens.cache_read_input_tokens,
        "cache_creation_input_tokens": tokens.cache_creation_input_tokens,
        "cost_usd": cost, "permission_denials": end.denials,
        "session_id": (end.result or {}).get("session_id") or end.session_id,
        "num_turns": int((end.result or {}).get("num_turns") or end.turns_seen),
    }
    if reason := end.stop_reason:
        return Outcome(status=reason.status, error_code=reason.code,
                       error_message=reason.message(end.limits, tokens.budget_tokens),
                       result=(end.result or {}).get("result"), **common)
    if end.result is None:
        detail = end.stderr_tail.strip()[-1000:] or "no output"
        return Outcome(status="failed", error_code=Failure.CRASHED,
                       error_message=f"claude exited with code {end.returncode} and no result: {detail}",
                       **common)
    return _from_result(end.result, common)


def _from_result(result: Mapping[str, Any], common: dict[str, Any]) -> Outcome:
    text = result.get("result")
    structured = result.get("structured_output")
    subtype = result.get("subtype")
    if not result.get("is_error") and subtype == "success":
        return Outcome(status="succeeded", result=text, structured_output=structured, **common)
    errors = "; ".join(str(error) for error in result.get("errors") or [])
    if subtype == "error_max_budget_usd":
        return Outcome(status="budget_exceeded", error_code="usd_budget_exceeded",
                       error_message=errors or "USD budget reached", result=text, **common)
    message = str(text or errors or "the agent reported an error")
    return Outcome(status="failed", error_code=classify(result), error_message=message, **common)


def classify(result: Mapping[str, Any]) -> Failure:
    """The class of a failed run's ``result`` line. API errors end with subtype ``success``,
    ``is_error`` and ``api_error_status`` (notes/claude-cli.md §2); the CLI rewrites a 400 for
    an oversized prompt as "Prompt is too long" and reports a timed-out request with no
    status."""
    subtype = result.get("subtype")
    if subtype == "error_max_turns":
        return Failure.MAX_TURNS
    text = str(result.get("result") or "").lower()
    status = result.get("api_error_status")
    if "prompt is too long" in text:
        return Failure.CONTEXT_TOO_LONG
    if "credit balance" in text or status == 402:
        return Failure.BILLING
    if isinstance(status, int):
        return _API_STATUS.get(status) or (
            Failure.SERVER_ERROR if status >= 500 else Failure.INVALID_REQUEST)
    if subtype == "success" and "timed out" in text:
        return Failure.SERVER_ERROR
    return Failure.TOOL_FAILURE


_API_STATUS = {429: Failure.RATE_LIMITED, 529: Failure.OVERLOADED, 401: Failure.AUTH_FAILED,
               403: Failure.AUTH_FAILED, 408: Failure.SERVER_ERROR}

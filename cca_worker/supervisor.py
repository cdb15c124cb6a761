"""Watch one running agent: read its events, enforce the limits, stop it when one is hit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from cca_core.tokens.usage import Tokens, UsageMeter
from cca_worker import stream
from cca_worker.agent import EOF, AgentProcess
from cca_worker.denials import DenialTracker
from cca_worker.verdict import Limits, RunEnd, StopReason

POLL_S = 0.2
FLUSH_S = 0.25

Clock = Callable[[], float]


class Sink(Protocol):
    """Where the run's events go (``cca_worker.events.EventSink``; a list in unit tests)."""

    def add(self, event: dict[str, Any]) -> None: ...

    def flush(self) -> None: ...


def supervise(
    proc: AgentProcess, limits: Limits, sink: Sink,
    heartbeat: Callable[[Tokens, int, frozenset[str]], bool], clock: Clock = time.monotonic,
    charge: Callable[[int], StopReason | None] | None = None,
) -> RunEnd:
    """Run the read loop until the process ends; return what was seen. Events still
    buffered in ``sink`` at the end are the caller's to write, with the outcome.

    ``heartbeat(tokens, turns, models)`` is called every ``heartbeat_s`` and right after each
    tool result (it stores the session, renews the lease and records progress) and answers
    whether to stop: the task was cancelled or lost.
    ``clock`` (seconds, monotonic) times the limits. ``charge(budget_tokens)`` is called
    whenever the run's usage grows (each model message) and names a shared budget it crossed.
    """
    meter, denials = UsageMeter(), DenialTracker()
    result: dict | None = None
    session_id: str | None = None
    stop_reason: StopReason | None = None
    started = last_output = last_beat = last_flush = clock()
    while True:
        line = proc.read_line(POLL_S)
        now = clock()
        if line is EOF:
            break
        if line is not None:
            last_output = now
            event = stream.parse_line(line)
            if event is not None:
                meter.observe(event)
                denials.observe(event)
                if stream.is_init(event):
                    session_id = event.get("session_id")
                    if missing := stream.unconnected_mcp_servers(event):
                        sink.add({"type": "cca", "subtype": "note", "message":
                                  f"MCP servers not connected at start: {', '.join(missing)}"})
                elif stream.is_result(event):
                    result = event
                elif stream.has_tool_result(event):
                    last_beat = float("-inf")  # beat now: it stores the session with this result
                if stream.should_persist(event):
                    sink.add(event)
        if stop_reason is None:
            stop_reason = _limit_hit(now - started, now - last_output, meter, limits)
            if stop_reason is None and charge is not None and line is not None:
                stop_reason = charge(meter.totals.budget_tokens)
            if stop_reason is None and now - last_beat >= limits.heartbeat_s:
                last_beat = now
                if heartbeat(meter.totals, meter.message_count, frozenset(meter.models)):
                    stop_reason = StopReason.CANCELLED
            if stop_reason is not None:
                proc.stop()
        if now - last_flush >= FLUSH_S:
            sink.flush()
            last_flush = now
    status = proc.wait()
    return RunEnd(
        result=result, stop_reason=stop_reason, returncode=status.returncode,
        stderr_tail=proc.stderr_tail, tokens=meter.totals, models=frozenset(meter.models),
        denials=denials.merge((result or {}).get("permission_denials")),
        session_id=session_id, turns_seen=meter.message_count,
        limits=limits,
    )


def _limit_hit(elapsed: float, idle: float, meter: UsageMeter,
               limits: Limits) -> StopReason | None:
    if meter.totals.budget_tokens > limits.token_budget:
        return StopReason.BUDGET_EXCEEDED
    if elapsed > limits.timeout_s:
        return StopReason.TIMED_OUT
    if idle > limits.stall_s:
        return StopReason.STALLED
    return None

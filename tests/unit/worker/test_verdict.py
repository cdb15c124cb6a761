"""The one terminal outcome of a run, decided from the result line and the stop reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from cca_core.tokens.usage import Tokens
from cca_worker import stream
from cca_worker.verdict import Limits, RunEnd, StopReason, decide

RECORDED = Path(__file__).parents[2] / "data" / "transcripts"


def result_of(name: str) -> dict:
    last = (RECORDED / f"{name}.jsonl").read_text().splitlines()[-1]
    event = stream.parse_line(last)
    assert event is not None and stream.is_result(event)
    return event


def end(result=None, stop_reason=None, returncode=0, tokens=None, stderr="") -> RunEnd:
    return RunEnd(result=result, stop_reason=stop_reason, returncode=returncode,
                  stderr_tail=stderr, tokens=tokens or Tokens(), models=frozenset({"claude-opus-4-8"}),
                  denials=[], session_id="s-1", turns_seen=3,
                  limits=Limits(timeout_s=5, stall_s=3, token_budget=500, heartbeat_s=1))


def test_success_records_result_usage_and_cost():
    outcome = decide(end(result_of("tool_success")))
    assert outcome.status == "succeeded"
    assert outcome.result == "saw: recorded-marker"
    assert (outcome.input_tokens, outcome.output_tokens) == (2200, 120)
    assert outcome.cost_usd == 0.0144
    assert outcome.num_turns == 2


def test_api_error_exits_one_with_subtype_success_but_fails():
    outcome = decide(end(result_of("rate_limited"), returncode=1))
    assert outcome.status == "failed"
    assert outcome.error_code == "rate_limited"
    assert "429" in (outcome.error_message or "")


def api_failure(status, text: str) -> dict:
    """A result line as the CLI writes it when the model API failed for good."""
    return {"type": "result", "subtype": "success", "is_error": True, "api_error_status": status,
            "result": text, "num_turns": 1, "total_cost_usd": 0}


@pytest.mark.parametrize(("status", "text", "failure"), [
    (429, "API Error: Request rejected (429) · rate_limit_error", "rate_limited"),
    (529, "API Error: Repeated 529 Overloaded errors", "overloaded"),
    (500, "API Error: 500 internal", "server_error"),
    (503, "API Error: 503", "server_error"),
    (None, "Request timed out", "server_error"),
    (401, "Failed to authenticate. API Error: 401 invalid x-api-key", "auth_failed"),
    (403, "API Error: 403 permission_error", "auth_failed"),
    (400, "API Error: 400 Your credit balance is too low to access the Anthropic API", "billing"),
    (400, "Prompt is too long · 210000 tokens > 200000 maximum", "context_too_long"),
    (400, "API Error: 400 invalid_request_error: tools.0: bad schema", "invalid_request"),
])
def test_a_failed_model_api_call_is_classified_by_status_and_message(status, text, failure):
    outcome = decide(end(api_failure(status, text), returncode=1))
    assert (outcome.status, outcome.error_code, outcome.error_message) == ("failed", failure, text)


def test_an_error_inside_the_agent_loop_is_a_tool_failure():
    result = {"type": "result", "subtype": "error_during_execution", "is_error": True,
              "errors": ["TypeError: x is undefined"], "num_turns": 2}
    outcome = decide(end(result, returncode=1))
    assert (outcome.error_code, outcome.error_message) == ("tool_failure", "TypeError: x is undefined")


def test_max_turns_fails_with_its_own_code():
    outcome = decide(end(result_of("max_turns"), returncode=1))
    assert (outcome.status, outcome.error_code) == ("failed", "max_turns")


def test_usd_budget_of_the_cli_is_a_budget_outcome():
    result = {"type": "result", "subtype": "error_max_budget_usd", "is_error": True,
              "errors": ["Reached maximum budget ($0.5)"], "total_cost_usd": 2.0}
    outcome = decide(end(result, returncode=1))
    assert (outcome.status, outcome.error_code) == ("budget_exceeded", "usd_budget_exceeded")
    assert outcome.cost_usd == 2.0


def test_interrupted_run_with_exit_zero_is_not_a_success():
    result = {"type": "result", "subtype": "error_during_execution", "is_error": True}
    assert decide(end(result, returncode=0)).status == "failed"


def test_a_stopped_run_ends_with_the_stop_reason_even_if_it_printed_success():
    outcome = decide(end(result_of("tool_success"), stop_reason=StopReason.CANCELLED))
    assert (outcome.status, outcome.error_code) == ("cancelled", "cancelled")


def test_budget_stop_keeps_partial_usage_and_estimates_cost():
    outcome = decide(end(None, stop_reason=StopReason.BUDGET_EXCEEDED, returncode=143,
                         tokens=Tokens(5000, 10, 0, 0)))
    assert outcome.status == "budget_exceeded"
    assert outcome.input_tokens == 5000
    assert outcome.cost_usd == round(5000 * 5e-6 + 10 * 25e-6, 6)
    assert "5010 tokens used" in (outcome.error_message or "")


def test_timeout_and_stall_are_both_timed_out_with_distinct_codes():
    assert decide(end(stop_reason=StopReason.TIMED_OUT)).error_code == "timeout"
    stalled = decide(end(stop_reason=StopReason.STALLED))
    assert (stalled.status, stalled.error_code) == ("timed_out", "stalled")


def test_a_crash_without_result_fails_with_stderr():
    outcome = decide(end(None, returncode=1, stderr="Error: Settings file not found: x"))
    assert outcome.error_code == "crashed"
    assert "Settings file not found" in (outcome.error_message or "")

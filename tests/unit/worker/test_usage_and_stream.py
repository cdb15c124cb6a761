"""Stream parsing and usage sums over lines recorded from the real claude CLI 2.1.197."""

from __future__ import annotations

from pathlib import Path

import pytest

from cca_core.tokens.pricing import estimate_cost
from cca_core.tokens.usage import Tokens, UsageMeter, result_tokens
from cca_worker import stream
from cca_worker.denials import DenialTracker

RECORDED = Path(__file__).parents[2] / "data" / "transcripts"


def events(name: str) -> list[dict]:
    lines = (RECORDED / f"{name}.jsonl").read_text().splitlines()
    parsed = [stream.parse_line(line) for line in lines]
    assert all(event is not None for event in parsed)
    return parsed  # type: ignore[return-value]


@pytest.mark.parametrize("line", ["", "   ", "not json", "{broken", "[1, 2]", "Error: bad flag"])
def test_non_event_lines_are_ignored(line):
    assert stream.parse_line(line) is None


def test_meter_sums_each_message_once_with_final_output_tokens():
    meter = UsageMeter()
    for event in events("tool_success"):
        if not stream.is_result(event):
            meter.observe(event)
    # Step 1 sent a text block and a tool_use block: two assistant lines, one message id.
    assert meter.message_count == 2
    assert meter.totals == Tokens(input_tokens=2200, output_tokens=120,
                                  cache_read_input_tokens=300, cache_creation_input_tokens=40)
    assert meter.totals.budget_tokens == 2200 + 40 + 120
    assert any(model.startswith("claude-opus-4-8") for model in meter.models)


def test_meter_without_partial_messages_uses_the_assistant_usage():
    meter = UsageMeter()
    for event in events("tool_success"):
        if event["type"] == "assistant":
            meter.observe(event)
    # Without message_delta, output is the message_start placeholder (1 per message).
    assert meter.totals.input_tokens == 2200
    assert meter.totals.output_tokens == 2


def test_result_totals_come_from_model_usage():
    result = events("tool_success")[-1]
    assert stream.is_result(result)
    assert result_tokens(result) == Tokens(2200, 120, 300, 40)


def test_result_totals_fall_back_to_usage():
    assert result_tokens({"usage": {"input_tokens": 7, "output_tokens": 3}}) == Tokens(7, 3, 0, 0)
    assert result_tokens({}) is None


def test_estimated_cost_matches_what_the_cli_charged():
    result = events("tool_success")[-1]
    assert estimate_cost(Tokens(2200, 120, 300, 40), {"claude-opus-4-8"}) == pytest.approx(
        result["total_cost_usd"])


def test_haiku_is_priced_below_opus():
    tokens = Tokens(1_000_000, 0, 0, 0)
    assert estimate_cost(tokens, {"claude-haiku-4-5-20251001"}) == pytest.approx(1.0)
    assert estimate_cost(tokens, {"my-gateway-model"}) == pytest.approx(5.0)


def test_denials_are_read_off_the_stream_and_merged_with_the_result():
    tracker = DenialTracker()
    recorded = events("denied")
    for event in recorded:
        tracker.observe(event)
    merged = tracker.merge(recorded[-1]["permission_denials"])
    assert len(merged) == 1
    assert merged[0]["tool_name"] == "Bash"
    assert merged[0]["tool_input"]["command"] == "touch denied.txt"


def test_init_and_retry_events_are_recognised():
    recorded = events("rate_limited")
    assert stream.is_init(recorded[0])
    assert stream.is_result(recorded[-1])
    assert not stream.is_api_retry(recorded[0])
    assert stream.is_api_retry({"type": "system", "subtype": "api_retry", "attempt": 1})


def test_only_message_boundaries_of_partial_messages_are_persisted():
    kinds = {(e["type"], (e.get("event") or {}).get("type")): stream.should_persist(e)
             for e in events("tool_success")}
    assert kinds[("stream_event", "content_block_delta")] is False
    assert kinds[("stream_event", "message_delta")] is True
    assert kinds[("assistant", None)] is True


def test_mcp_servers_that_did_not_connect_are_named_with_their_status():
    init = {"type": "system", "subtype": "init", "mcp_servers": [
        {"name": "cca", "status": "pending"}, {"name": "docs", "status": "connected"},
        {"name": "broken", "status": "failed"}]}
    assert stream.unconnected_mcp_servers(init) == ["cca (pending)", "broken (failed)"]
    assert stream.unconnected_mcp_servers({"type": "system", "subtype": "init"}) == []

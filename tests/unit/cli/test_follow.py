"""The terminal rendering of a live stream (pure), and the SSE reader it is fed by."""

from __future__ import annotations

from cca_cli.follow import Renderer
from cca_core.infra.sse import ServerEvent, parse


def event(data: dict) -> ServerEvent:
    return ServerEvent("event", {"id": 1, "attempt": 1, "type": data.get("type"), "data": data})


def test_the_parser_reads_ids_names_and_data_and_skips_heartbeats():
    lines = ["retry: 2000", "", ": keep-alive", "", "id: 7", "event: event", 'data: {"a":', "data: 1}", "",
             "event: end", 'data: {"status":"failed"}', ""]
    assert list(parse(lines)) == [ServerEvent("event", {"a": 1}, 7), ServerEvent("end", {"status": "failed"})]


def test_tool_calls_denials_retries_and_spending_are_rendered():
    renderer = Renderer()
    assert renderer.lines(ServerEvent("status", {"status": "queued", "waiting_for": "credential"})) == [
        "[queued] (waiting for credential)"]
    turn = {"type": "assistant", "message": {
        "id": "m1", "model": "claude-sonnet-4-5", "usage": {"input_tokens": 1000, "output_tokens": 100},
        "content": [{"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "name": "Write",
                     "input": {"file_path": "/etc/x", "content": "y" * 300}}]}}
    shown = renderer.lines(event(turn))
    assert shown[0] == "Let me look." and shown[1].startswith('⚙ Write {"file_path":"/etc/x"')
    assert shown[1].endswith("…") and len(shown[1]) < 110
    assert shown[2] == "  · tokens in 1000 out 100 · ~$0.0045"
    assert renderer.lines(event(turn)) == shown[:2]  # the same turn is priced once
    denied = {"type": "user", "message": {"content": [{"type": "tool_result", "is_error": True, "content":
              "Claude requested permissions to write to /etc/x, but you haven't granted it yet."}]}}
    assert renderer.lines(event(denied))[0].startswith("⛔ denied: Claude requested permissions")
    retry = {"type": "system", "subtype": "api_retry", "attempt": 1, "max_retries": 10,
             "retry_delay_ms": 1500, "error_status": 529}
    assert renderer.lines(event(retry)) == ["↻ model API retry 1/10 in 1.5 s (529)"]
    parked = {"type": "cca", "subtype": "retry", "attempt": 1, "error_code": "rate_limited",
              "retry_at": "2026-12-04T12:00:00+00:00"}
    assert "rate_limited" in renderer.lines(event(parked))[0]
    result = {"type": "result", "subtype": "success", "num_turns": 2, "total_cost_usd": 0.01,
              "permission_denials": [{"tool_name": "Write", "tool_input": {"file_path": "/etc/x"}}]}
    assert renderer.lines(event(result)) == ["■ success · turns 2 · $0.0100",
                                             '⛔ denied: Write {"file_path": "/etc/x"}']
    failed = {"status": "failed", "error": {"code": "crashed", "message": "claude exited"}}
    assert renderer.lines(ServerEvent("status", failed)) == ["[failed] · crashed: claude exited"]

"""What a run's stream-json events say, as short lines of text (pure): the agent's text, each
tool call with its input shortened, tool errors and permission denials, retries, the result.
The terminal (``cca tasks follow``) and the dashboard's timeline show the same lines."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from cca_core.streamjson import content_blocks, content_text

INPUT_CHARS = 100  # of a tool call's input shown
TEXT_CHARS = 2000  # of an agent's text or a tool error shown


def shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def event_lines(data: Mapping[str, Any]) -> list[str]:
    """What one stream-json event says, as lines of text (none for bookkeeping events)."""
    kind, subtype = data.get("type"), data.get("subtype")
    if kind == "system" and subtype == "init":
        return [f"started · model {data.get('model')} · {len(data.get('tools') or [])} tools"]
    if kind == "system" and subtype == "api_retry":
        return [f"↻ model API retry {data.get('attempt')}/{data.get('max_retries')} in "
                f"{round((data.get('retry_delay_ms') or 0) / 1000, 1)} s "
                f"({data.get('error_status') or data.get('error')})"]
    if kind == "cca" and subtype == "retry":
        return [f"↻ attempt {data.get('attempt')} failed ({data.get('error_code')}); "
                f"it runs again at {data.get('retry_at')}"]
    if kind == "assistant":
        return list(_assistant(data.get("message") or {}))
    if kind == "user":
        return list(_tool_errors(data.get("message") or {}))
    if kind == "result":
        return _result(data)
    return []


def _assistant(message: Mapping[str, Any]) -> Iterable[str]:
    for block in content_blocks(message):
        if block.get("type") == "text" and str(block.get("text", "")).strip():
            yield shorten(str(block["text"]), TEXT_CHARS)
        elif block.get("type") == "tool_use":
            tool_input = json.dumps(block.get("input"), separators=(",", ":"))
            yield f"⚙ {block.get('name')} {shorten(tool_input, INPUT_CHARS)}"


def _tool_errors(message: Mapping[str, Any]) -> Iterable[str]:
    for block in content_blocks(message):
        if block.get("type") == "tool_result" and block.get("is_error"):
            text = content_text(block.get("content"))
            mark = "⛔ denied" if "permission" in text.lower() else "✗ tool error"
            yield f"{mark}: {shorten(text, TEXT_CHARS)}"


def _result(data: Mapping[str, Any]) -> list[str]:
    cost = data.get("total_cost_usd")
    lines = [f"■ {data.get('subtype')} · turns {data.get('num_turns')}"
             + (f" · ${cost:.4f}" if isinstance(cost, int | float) else "")]
    denials = data.get("permission_denials") or []
    lines += [f"⛔ denied: {denial.get('tool_name')} "
              f"{shorten(json.dumps(denial.get('tool_input')), INPUT_CHARS)}"
              for denial in denials if isinstance(denial, Mapping)]
    return lines

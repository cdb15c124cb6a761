"""Summarise a task's stream-json events so they fit a context window (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

TEXT_LIMIT = 300


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def summarize(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per meaningful event: tool calls, tool errors and denials, retries, text, the
    result. Streaming deltas and bookkeeping events are dropped."""
    lines: list[str] = []
    for event in events:
        lines.extend(_lines(event))
    return lines


def _lines(event: Mapping[str, Any]) -> list[str]:
    kind, subtype = event.get("type"), event.get("subtype")
    if kind == "system" and subtype == "init":
        servers = ", ".join(f"{s.get('name')}={s.get('status')}" for s in event.get("mcp_servers") or [])
        return [f"start: model {event.get('model')}, {len(event.get('tools') or [])} tools"
                + (f", mcp {servers}" if servers else "")]
    if kind == "system" and subtype == "api_retry":
        return [f"api retry {event.get('attempt')}/{event.get('max_retries')}: "
                f"{event.get('error')} ({event.get('error_status')})"]
    if kind == "assistant":
        return [_block(block) for block in (event.get("message") or {}).get("content") or []
                if isinstance(block, Mapping) and block.get("type") in ("text", "tool_use")]
    if kind == "user":
        return [_tool_result(block) for block in (event.get("message") or {}).get("content") or []
                if isinstance(block, Mapping) and block.get("type") == "tool_result"
                and block.get("is_error")]
    if kind == "result":
        text = event.get("result") or "; ".join(map(str, event.get("errors") or []))
        state = "error" if event.get("is_error") else "ok"
        return [f"result ({state}, {event.get('subtype')}, {event.get('num_turns')} turns, "
                f"${event.get('total_cost_usd', 0)}): {clip(str(text), 800)}"]
    if kind == "cca":
        return [f"cca: {event.get('message')}"]
    return []


def _block(block: Mapping[str, Any]) -> str:
    if block.get("type") == "text":
        return f"text: {clip(str(block.get('text', '')))}"
    arguments = json.dumps(block.get("input"), separators=(",", ":"))
    return f"tool {block.get('name')}: {clip(arguments, 200)}"


def _tool_result(block: Mapping[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    label = "denied" if "denied" in str(content) or "granted" in str(content) else "tool error"
    return f"{label}: {clip(str(content), 200)}"

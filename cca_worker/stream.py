"""Parse `claude --output-format stream-json` lines into event dicts (pure)."""

from __future__ import annotations

import json
from typing import Any

Event = dict[str, Any]


def parse_line(line: str) -> Event | None:
    """Return the event of one NDJSON line, or None for a blank or non-JSON line."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


def is_result(event: Event) -> bool:
    return event.get("type") == "result"


def is_init(event: Event) -> bool:
    return event.get("type") == "system" and event.get("subtype") == "init"


def unconnected_mcp_servers(event: Event) -> list[str]:
    """The MCP servers of an ``init`` event that are not connected, as ``name (status)``: their
    tools are missing for the whole run (the CLI does not fail it)."""
    return [f"{server.get('name')} ({server.get('status')})"
            for server in event.get("mcp_servers") or []
            if isinstance(server, dict) and server.get("status") != "connected"]


def has_tool_result(event: Event) -> bool:
    """A ``user`` line carrying a tool's result back to the model."""
    if event.get("type") != "user":
        return False
    content = (event.get("message") or {}).get("content")
    return isinstance(content, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content)


def is_api_retry(event: Event) -> bool:
    return event.get("type") == "system" and event.get("subtype") == "api_retry"


def should_persist(event: Event) -> bool:
    """Partial-message deltas are only for live budgets; everything else is kept."""
    if event.get("type") != "stream_event":
        return True
    inner = event.get("event") or {}
    return inner.get("type") in ("message_start", "message_delta")

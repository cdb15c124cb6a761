"""Collect permission denials from the event stream (pure).

``result.permission_denials`` misses denials by Read deny rules (notes/claude-cli.md §3), and a
killed run has no result line at all, so denials are also read off the tool results.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cca_core.streamjson import content_text

DENIAL_MARKERS = (
    "has been denied",
    "haven't granted it yet",
    "denied by your permission settings",
    "requires approval",
)


class DenialTracker:
    def __init__(self) -> None:
        self._tool_uses: dict[str, dict[str, Any]] = {}
        self.denials: list[dict[str, Any]] = []

    def observe(self, event: Mapping[str, Any]) -> None:
        content = (event.get("message") or {}).get("content") or []
        if event.get("type") == "assistant":
            for block in content:
                if isinstance(block, Mapping) and block.get("type") == "tool_use":
                    self._tool_uses[block.get("id", "")] = {
                        "tool_name": block.get("name"), "tool_use_id": block.get("id"),
                        "tool_input": block.get("input")}
        elif event.get("type") == "user":
            for block in content:
                if _is_denial(block):
                    use = self._tool_uses.get(block.get("tool_use_id", ""), {
                        "tool_name": None, "tool_use_id": block.get("tool_use_id"),
                        "tool_input": None})
                    self._add({**use, "message": content_text(block.get("content"))[:500]})

    def merge(self, reported: Any) -> list[dict[str, Any]]:
        """The CLI's own list plus what only the stream showed, each tool use once."""
        for denial in reported if isinstance(reported, list) else []:
            if isinstance(denial, Mapping):
                self._add(dict(denial))
        return self.denials

    def _add(self, denial: dict[str, Any]) -> None:
        for known in self.denials:
            if known.get("tool_use_id") == denial.get("tool_use_id"):
                known.update({k: v for k, v in denial.items() if v is not None})
                return
        self.denials.append(denial)


def _is_denial(block: Any) -> bool:
    if not isinstance(block, Mapping) or block.get("type") != "tool_result" or not block.get("is_error"):
        return False
    text = content_text(block.get("content"))
    return any(marker in text for marker in DENIAL_MARKERS)


"""Reading the messages of the CLI's stream-json lines (pure): their content blocks, and a
block's content as text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def content_blocks(message: Any) -> list[Mapping[str, Any]]:
    """The content blocks of a message (none when it has a plain string or nothing)."""
    content = message.get("content") if isinstance(message, Mapping) else None
    return [block for block in content if isinstance(block, Mapping)] if isinstance(content, list) else []


def content_text(content: Any) -> str:
    """A block's content as text: a string, or the texts of its parts joined by spaces."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""

"""A memory to store (pure): what an ended task leaves, a note, an imported record."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NewMemory:
    content: str
    kind: str = "note"
    tags: tuple[str, ...] = ()
    source_task_id: str | None = None
    successes: int = 0
    failures: int = 0

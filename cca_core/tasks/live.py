"""A task's live event stream in Redis: how the worker writes an entry and a follower reads it.

An entry's stream id is ``<event id>-0``, the id of the same event in ``task_events``, so a
follower has one cursor: it replays the table after it, then reads the stream after it
(``XREAD`` from ``<cursor>-0``), and a client resumes from the last id it saw."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from cca_core.tasks.schemas import EventView


def stream_entry(event_id: int, attempt: int, created_at: datetime,
                 event: dict[str, Any]) -> tuple[str, dict[Any, Any]]:
    """The (stream id, fields) of one recorded event."""
    return f"{event_id}-0", {"attempt": attempt, "at": created_at.isoformat(),
                             "event": json.dumps(event)}


def stream_id(event_id: int) -> str:
    """The stream position just at ``event_id``: ``XREAD`` from it returns later events."""
    return f"{event_id}-0"


def entry_view(entry_id: bytes | str, fields: dict[bytes, bytes]) -> EventView:
    """An entry read back from the stream, as ``GET …/events`` shows the same event."""
    ident = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    event = json.loads(fields[b"event"])
    return EventView(id=int(ident.split("-", 1)[0]), attempt=int(fields[b"attempt"]),
                     type=str(event.get("type") or "unknown"), subtype=event.get("subtype"),
                     data=event, created_at=entry_time(fields))


def entry_time(fields: dict[bytes, bytes]) -> datetime:
    """When the entry's event was recorded."""
    return datetime.fromisoformat(fields[b"at"].decode())

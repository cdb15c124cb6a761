"""Reading Server-Sent Events (the API's live streams): the parts of the format cca sends."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServerEvent:
    event: str
    data: Any  # the decoded JSON
    id: int | None = None


def parse(lines: Iterable[str]) -> Iterator[ServerEvent]:
    """The events in a stream's lines; comments (heartbeats) and ``retry:`` are skipped."""
    name, ident = "message", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield ServerEvent(name, json.loads("\n".join(data)), ident)
            name, data, ident = "message", [], None
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id" and value.isdigit():
            ident = int(value)

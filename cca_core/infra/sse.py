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


class Parser:
    """Fed a stream's lines one by one; comments (heartbeats) and ``retry:`` are skipped."""

    def __init__(self) -> None:
        self._name, self._id, self._data = "message", None, []  # type: tuple[str, int | None, list[str]]

    def feed(self, line: str) -> ServerEvent | None:
        """The event ``line`` completes, if any."""
        if not line:
            data = "\n".join(self._data)
            event = ServerEvent(self._name, json.loads(data), self._id) if self._data else None
            self._name, self._id, self._data = "message", None, []
            return event
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._name = value
        elif field == "data":
            self._data.append(value)
        elif field == "id" and value.isdigit():
            self._id = int(value)
        return None


def parse(lines: Iterable[str]) -> Iterator[ServerEvent]:
    """The events in a stream's lines."""
    parser = Parser()
    for line in lines:
        if (event := parser.feed(line)) is not None:
            yield event

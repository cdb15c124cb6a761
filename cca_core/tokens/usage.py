"""Sum token usage while a run goes on (pure).

An ``assistant`` line carries the ``message_start`` usage of its message (right input and
cache counts, a placeholder output count) and a message with N content blocks gives N lines
with the same id, so usage is kept per message id. The final output count of a message comes
from its ``message_delta`` stream event (``--include-partial-messages``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


@dataclass(frozen=True)
class Tokens:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    @property
    def budget_tokens(self) -> int:
        """What a token budget counts: new input, cache writes and output; cache reads are
        re-reads of context already paid for and would exhaust any budget on long runs."""
        return self.input_tokens + self.cache_creation_input_tokens + self.output_tokens


class UsageMeter:
    """Per-message-id usage of one run, fed every event in order."""

    def __init__(self) -> None:
        self._by_message: dict[str, dict[str, int]] = {}
        self._current: dict[str | None, str] = {}
        self._model_of: dict[str, str] = {}
        self.models: set[str] = set()

    def observe(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind == "assistant":
            message = event.get("message") or {}
            self._note_model(message)
            self._record(message.get("id"), message.get("usage"))
        elif kind == "stream_event":
            self._observe_stream(event.get("event") or {}, event.get("parent_tool_use_id"))

    def _observe_stream(self, inner: Mapping[str, Any], parent: str | None) -> None:
        if inner.get("type") == "message_start":
            message = inner.get("message") or {}
            if message.get("id"):
                self._current[parent] = message["id"]
            self._note_model(message)
            self._record(message.get("id"), message.get("usage"))
        elif inner.get("type") == "message_delta":
            self._record(self._current.get(parent), inner.get("usage"))

    def _note_model(self, message: Mapping[str, Any]) -> None:
        model = message.get("model")
        if model and model != "<synthetic>":
            self.models.add(model)
            if message.get("id"):
                self._model_of[message["id"]] = model

    def _record(self, message_id: str | None, usage: Any) -> None:
        if not message_id or not isinstance(usage, Mapping):
            return
        seen = self._by_message.setdefault(message_id, dict.fromkeys(FIELDS, 0))
        for name in FIELDS:
            value = usage.get(name)
            if isinstance(value, int) and value > seen[name]:
                seen[name] = value

    def messages(self) -> list[tuple[str, str | None, Tokens]]:
        """Each message so far, first first: its id, model and usage."""
        return [(message_id, self._model_of.get(message_id), Tokens(**usage))
                for message_id, usage in self._by_message.items()]

    @property
    def message_count(self) -> int:
        return len(self._by_message)

    @property
    def totals(self) -> Tokens:
        sums = dict.fromkeys(FIELDS, 0)
        for usage in self._by_message.values():
            for name in FIELDS:
                sums[name] += usage[name]
        return Tokens(**sums)


def result_tokens(result: Mapping[str, Any]) -> Tokens | None:
    """Final totals of a run from its ``result`` line: ``modelUsage`` summed over models
    (``usage`` is not always cumulative), else ``usage``."""
    model_usage = result.get("modelUsage")
    if isinstance(model_usage, Mapping) and model_usage:
        keys = {"input_tokens": "inputTokens", "output_tokens": "outputTokens",
                "cache_read_input_tokens": "cacheReadInputTokens",
                "cache_creation_input_tokens": "cacheCreationInputTokens"}
        return Tokens(**{
            name: sum(int(entry.get(key) or 0) for entry in model_usage.values()
                      if isinstance(entry, Mapping))
            for name, key in keys.items()
        })
    usage = result.get("usage")
    if isinstance(usage, Mapping):
        return Tokens(**{name: int(usage.get(name) or 0) for name in FIELDS})
    return None

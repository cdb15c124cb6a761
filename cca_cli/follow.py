"""Render a task's live stream in the terminal (``cca tasks follow``, ``cca submit --follow``):
text, tool calls with their inputs shortened, tool errors and permission denials, retries,
status changes, and the tokens and cost so far."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cca_core.infra.sse import ServerEvent
from cca_core.tasks.narration import event_lines
from cca_core.tokens.pricing import estimate_cost
from cca_core.tokens.usage import UsageMeter


class Renderer:
    """Turns stream events into lines; keeps the run's usage so far."""

    def __init__(self) -> None:
        self.usage = UsageMeter()
        self.task: dict[str, Any] | None = None  # the last status the stream sent
        self._priced: set[str] = set()  # the model turns whose spending was shown

    def lines(self, event: ServerEvent) -> list[str]:
        if event.event == "status":
            self.task = event.data
            return [self._status(event.data)]
        if event.event == "event":
            data = event.data["data"]
            self.usage.observe(data)
            shown = event_lines(data)
            message_id = (data.get("message") or {}).get("id") if data.get("type") == "assistant" else None
            if message_id and message_id not in self._priced:  # once per model turn
                self._priced.add(message_id)
                shown.append(self.spent())
            return shown
        return []

    def spent(self) -> str:
        totals = self.usage.totals
        cost = estimate_cost(totals, self.usage.models)
        return (f"  · tokens in {totals.input_tokens + totals.cache_read_input_tokens} "
                f"out {totals.output_tokens} · ~${cost:.4f}")

    def _status(self, task: Mapping[str, Any]) -> str:
        waiting = f" (waiting for {task['waiting_for']})" if task.get("waiting_for") else ""
        error = f" · {task['error']['code']}: {task['error']['message']}" if task.get("error") else ""
        return f"[{task['status']}]{waiting}{error}"

"""Render a task's live stream in the terminal (``cca tasks follow``, ``cca submit --follow``):
text, tool calls with their inputs shortened, tool errors and permission denials, retries,
status changes, and the tokens and cost so far."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from cca_core.infra.sse import ServerEvent
from cca_core.streamjson import content_blocks, content_text
from cca_core.tokens.pricing import estimate_cost
from cca_core.tokens.usage import UsageMeter

INPUT_CHARS = 100  # of a tool call's input shown
TEXT_CHARS = 2000  # of an agent's text or a tool error shown


def shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


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
            shown = self._event(data)
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

    def _event(self, data: Mapping[str, Any]) -> list[str]:
        kind, subtype = data.get("type"), data.get("subtype")
        if kind == "system" and subtype == "init":
            return [f"started · model {data.get('model')} · {len(data.get('tools') or [])} tools"]
        if kind == "system" and subtype == "api_retry":
            return [f"↻ model API retry {data.get('attempt')}/{data.get('max_retries')} in "
                    f"{round((data.get('retry_delay_ms') or 0) / 1000, 1)} s "
                    f"({data.get('error_status') or data.get('error')})"]
        if kind == "cca" and subtype == "retry":
            return [f"↻ attempt {data.get('attempt')} failed ({data.get('error_code')}); "
                    f"it runs again at {data.get('retry_at')}"]
        if kind == "assistant":
            return list(self._assistant(data.get("message") or {}))
        if kind == "user":
            return list(self._tool_errors(data.get("message") or {}))
        if kind == "result":
            return self._result(data)
        return []

    def _assistant(self, message: Mapping[str, Any]) -> Iterable[str]:
        for block in content_blocks(message):
            if block.get("type") == "text" and str(block.get("text", "")).strip():
                yield shorten(str(block["text"]), TEXT_CHARS)
            elif block.get("type") == "tool_use":
                tool_input = json.dumps(block.get("input"), separators=(",", ":"))
                yield f"⚙ {block.get('name')} {shorten(tool_input, INPUT_CHARS)}"

    def _tool_errors(self, message: Mapping[str, Any]) -> Iterable[str]:
        for block in content_blocks(message):
            if block.get("type") == "tool_result" and block.get("is_error"):
                text = content_text(block.get("content"))
                mark = "⛔ denied" if "permission" in text.lower() else "✗ tool error"
                yield f"{mark}: {shorten(text, TEXT_CHARS)}"

    def _result(self, data: Mapping[str, Any]) -> list[str]:
        cost = data.get("total_cost_usd")
        lines = [f"■ {data.get('subtype')} · turns {data.get('num_turns')}"
                 + (f" · ${cost:.4f}" if isinstance(cost, int | float) else "")]
        denials = data.get("permission_denials") or []
        lines += [f"⛔ denied: {denial.get('tool_name')} "
                  f"{shorten(json.dumps(denial.get('tool_input')), INPUT_CHARS)}"
                  for denial in denials if isinstance(denial, Mapping)]
        return lines

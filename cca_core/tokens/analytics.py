"""What the record says about tokens (pure): where one task's tokens went, turn by turn, and
the findings a fleet's recent history supports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cca_core.streamjson import content_blocks, content_text
from cca_core.tokens.schemas import (
    CHARS_PER_TOKEN,
    DayRow,
    Finding,
    ModelCost,
    TaskTokens,
    ToolOutput,
    Turn,
)
from cca_core.tokens.usage import UsageMeter

# When a finding is worth reporting.
LOW_CACHE_HIT_RATIO = 0.3
CACHE_MIN_CONTEXT_TOKENS = 50_000  # below this, caching has little to win
OVERSIZED_TOOL_OUTPUT_TOKENS = 5_000
MIN_TASKS = 3  # a role's share of endings needs this many tasks
ALWAYS_SHARE = 0.5


def task_tokens(task_id: str, events: Iterable[Mapping[str, Any]]) -> TaskTokens:
    """One task's turns (context, cache reads, output), its tools' output and its cost by
    model, from its recorded events in order (every attempt's)."""
    meter = UsageMeter()
    tool_names: dict[str, str] = {}
    outputs: dict[str, list[int]] = {}
    costs: dict[str, dict[str, float]] = {}
    for event in events:
        meter.observe(event)
        kind = event.get("type")
        if kind == "assistant":
            for block in content_blocks(event.get("message")):
                if block.get("type") == "tool_use" and block.get("id"):
                    tool_names[block["id"]] = str(block.get("name") or "unknown")
        elif kind == "user":
            for block in content_blocks(event.get("message")):
                if block.get("type") == "tool_result":
                    name = tool_names.get(str(block.get("tool_use_id")), "unknown")
                    outputs.setdefault(name, []).append(len(content_text(block.get("content"))))
        elif kind == "result":
            _add_costs(costs, event.get("modelUsage"))
    turns = [_turn(n, message_id, model, usage)
             for n, (message_id, model, usage) in enumerate(meter.messages(), start=1)]
    context = sum(turn.context_tokens for turn in turns)
    return TaskTokens(
        task_id=task_id, turns=turns, context_peak=max((turn.context_tokens for turn in turns), default=0),
        cache_hit_ratio=_ratio(sum(turn.cache_read_input_tokens for turn in turns), context),
        tool_outputs=sorted((ToolOutput(tool=name, calls=len(sizes), characters=sum(sizes),
                                        estimated_tokens=sum(sizes) // CHARS_PER_TOKEN,
                                        largest_characters=max(sizes))
                             for name, sizes in outputs.items()),
                            key=lambda output: -output.characters),
        cost_by_model=[ModelCost(model=model, **{name: int(value) for name, value in spent.items()
                                                 if name != "cost_usd"}, cost_usd=spent["cost_usd"])
                       for model, spent in sorted(costs.items())])


def findings(rows: Sequence[DayRow], tasks: Sequence[TaskTokens], task_roles: Mapping[str, str | None],
             endings: Mapping[tuple[str | None, str], int], ended: Mapping[str | None, int],
             budgets: Mapping[str | None, int]) -> list[Finding]:
    """Concrete findings: roles and models whose runs rarely read their cache, tools whose
    output is oversized (in ``tasks``, the recent ones examined), roles whose runs often end
    at max turns or on their token budget (``endings``: tasks per (role, error code);
    ``ended``: tasks per role; ``budgets``: each role's token budget)."""
    return [*_cache_findings(rows), *_tool_findings(tasks, task_roles),
            *_ending_findings(endings, ended, budgets)]


def _cache_findings(rows: Sequence[DayRow]) -> list[Finding]:
    totals: dict[tuple[str | None, str], tuple[int, int]] = {}  # cache reads, context
    for row in rows:
        read, context = totals.get((row.role, row.model), (0, 0))
        totals[(row.role, row.model)] = (
            read + row.cache_read_input_tokens,
            context + row.input_tokens + row.cache_read_input_tokens + row.cache_creation_input_tokens)
    found = []
    for (role, model), (read, context) in sorted(totals.items(), key=lambda item: -item[1][1]):
        ratio = _ratio(read, context)
        if context >= CACHE_MIN_CONTEXT_TOKENS and ratio < LOW_CACHE_HIT_RATIO:
            found.append(Finding(
                kind="low_cache_hit_ratio", subject=f"role {role or '(none)'} on {model}",
                evidence={"cache_hit_ratio": ratio, "context_tokens": context},
                advice="Its runs re-read little of their context from the cache: keep the "
                       "system prompt and early context stable between turns (an appended "
                       "prompt that changes per task, or tools whose list changes, break the "
                       "cache), and prefer longer runs over many short ones."))
    return found


def _tool_findings(tasks: Sequence[TaskTokens], task_roles: Mapping[str, str | None]) -> list[Finding]:
    oversized: dict[str, list[tuple[int, str]]] = {}
    for task in tasks:
        for output in task.tool_outputs:
            if output.largest_characters // CHARS_PER_TOKEN >= OVERSIZED_TOOL_OUTPUT_TOKENS:
                oversized.setdefault(output.tool, []).append((output.largest_characters, task.task_id))
    found = []
    for tool, hits in sorted(oversized.items(), key=lambda item: -len(item[1])):
        largest, task_id = max(hits)
        roles = sorted({task_roles.get(task) or "(none)" for _, task in hits})
        found.append(Finding(
            kind="oversized_tool_output", subject=f"tool {tool}",
            evidence={"tasks": len(hits), "largest_estimated_tokens": largest // CHARS_PER_TOKEN,
                      "example_task": task_id, "roles": ", ".join(roles)},
            advice=f"{tool} returned over {OVERSIZED_TOOL_OUTPUT_TOKENS} tokens at once in "
                   f"{len(hits)} task(s); every later turn pays for it again. Narrow it (a path "
                   "or pattern for Grep and Glob, `| head`/`| tail` or a quieter flag for Bash, "
                   "offset and limit for Read) or say so in the role's prompt."))
    return found


def _ending_findings(endings: Mapping[tuple[str | None, str], int], ended: Mapping[str | None, int],
                     budgets: Mapping[str | None, int]) -> list[Finding]:
    found = []
    for (role, code), count in sorted(endings.items(), key=lambda item: -item[1]):
        total = ended.get(role, 0)
        if total < MIN_TASKS or count / total < (ALWAYS_SHARE if code != "max_turns" else 0.2):
            continue
        share = {"share": round(count / total, 3), "tasks": total, "ended_so": count}
        name = role or "(none)"
        if code == "max_turns":
            found.append(Finding(
                kind="max_turns", subject=f"role {name}", evidence=share,
                advice="Its runs often stop at max_turns before an answer: raise the role's "
                       "max turns, or split such tasks (mode coordinate) so each run ends."))
        else:
            found.append(Finding(
                kind="budget_always_hit", subject=f"role {name}",
                evidence={**share, "token_budget": budgets.get(role, 0)},
                advice=f"Most of its runs end on their token budget "
                       f"({budgets.get(role, 0)} tokens): raise agents.roles.{name}.token_budget "
                       "if the work is worth it, or give its tasks a narrower scope."))
    return found


def _turn(n: int, message_id: str, model: str | None, usage: Any) -> Turn:
    context = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
    return Turn(turn=n, message_id=message_id, model=model, context_tokens=context,
                input_tokens=usage.input_tokens, cache_read_input_tokens=usage.cache_read_input_tokens,
                cache_creation_input_tokens=usage.cache_creation_input_tokens,
                output_tokens=usage.output_tokens,
                cache_hit_ratio=_ratio(usage.cache_read_input_tokens, context))


def _add_costs(costs: dict[str, dict[str, float]], model_usage: Any) -> None:
    names = {"inputTokens": "input_tokens", "outputTokens": "output_tokens",
             "cacheReadInputTokens": "cache_read_input_tokens",
             "cacheCreationInputTokens": "cache_creation_input_tokens", "costUSD": "cost_usd"}
    for model, spent in (model_usage or {}).items() if isinstance(model_usage, Mapping) else ():
        into = costs.setdefault(model, dict.fromkeys(names.values(), 0.0))
        for source, name in names.items():
            value = spent.get(source) if isinstance(spent, Mapping) else None
            into[name] += float(value) if isinstance(value, int | float) else 0.0


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0

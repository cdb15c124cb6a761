"""``cca tokens``: where the tokens and dollars went, and what to change."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cca_cli.context import CliState, handle_errors, pass_state, print_json

console = Console()


@click.command()
@click.option("--days", type=click.IntRange(1, 90), default=7, show_default=True)
@click.option("--task", "task_id", help="One task, turn by turn.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def tokens(state: CliState, days: int, task_id: str | None, as_json: bool) -> None:
    """Tokens and dollars per day, key, role and model, with findings on what to change (or
    one task turn by turn: context, cache hits, output, tool output, cost by model)."""
    client = state.client()
    if task_id:
        found = client.task_tokens(task_id)
        return print_json(found) if as_json else _task(found)
    metrics, advice = client.token_metrics(days), client.token_recommendations(days)
    if as_json:
        return print_json({"metrics": metrics, "recommendations": advice})
    table = Table("day", "key", "role", "model", "tasks", "input", "output", "cache hit", "cost")
    for row in metrics["rows"]:
        table.add_row(row["day"], row["key"] or "", row["role"] or "", row["model"], str(row["tasks"]),
                      str(row["input_tokens"] + row["cache_creation_input_tokens"]),
                      str(row["output_tokens"]), f"{row['cache_hit_ratio']:.0%}", f"${row['cost_usd']:.4f}")
    console.print(table)
    console.print(f"{metrics['total_tokens']} tokens, ${metrics['total_cost_usd']:.4f} since "
                  f"{metrics['since'][:10]}; {advice['tasks_examined']} recent tasks examined")
    for finding in advice["findings"]:
        evidence = ", ".join(f"{name} {value}" for name, value in finding["evidence"].items())
        console.print(f"- [bold]{finding['kind']}[/bold] ({finding['subject']}; {evidence}): "
                      f"{finding['advice']}", markup=True, highlight=False)


def _task(found: dict[str, Any]) -> None:
    table = Table("turn", "model", "context", "cache read", "cache hit", "output")
    for turn in found["turns"]:
        table.add_row(str(turn["turn"]), turn["model"] or "", str(turn["context_tokens"]),
                      str(turn["cache_read_input_tokens"]), f"{turn['cache_hit_ratio']:.0%}",
                      str(turn["output_tokens"]))
    console.print(table)
    console.print(f"context peak {found['context_peak']}, cache hit ratio {found['cache_hit_ratio']:.0%}")
    for output in found["tool_outputs"]:
        console.print(f"  {output['tool']}: {output['calls']} calls, ~{output['estimated_tokens']} tokens "
                      f"(largest {output['largest_characters']} characters)")
    for model in found["cost_by_model"]:
        console.print(f"  {model['model']}: ${model['cost_usd']:.4f}")

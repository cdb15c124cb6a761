"""``cca keys create|list|revoke``: managed API keys, over the API with an admin key."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cca_cli.context import CliState, handle_errors, pass_state, print_json
from cca_core.access.key_limits import KeyLimits

console = Console()


@click.group()
def keys() -> None:
    """Managed API keys (needs an admin key)."""


@keys.command()
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "submitter", "reader"]), default="submitter",
              show_default=True)
@click.option("--tenant", help="Team whose tasks this key shares (default: NAME).")
@click.option("--max-concurrent", type=click.IntRange(min=0), help="Tasks queued or running at once.")
@click.option("--tokens-per-day", type=click.IntRange(min=0))
@click.option("--usd-per-day", type=click.FloatRange(min=0))
@click.option("--allowed-queue", "allowed_queues", multiple=True,
              help="A queue its tasks may use (repeat; default any of agents.queues).")
@click.option("--allowed-role", "allowed_roles", multiple=True,
              help="An agent role its tasks may use (repeat; the first is its default).")
@click.option("--allowed-model", "allowed_models", multiple=True, help="A model (repeat).")
@click.option("--allowed-permission-mode", "allowed_permission_modes", multiple=True,
              type=click.Choice(["sandbox", "allowlist", "dangerous"]), help="(repeat)")
@click.option("--max-token-budget", type=click.IntRange(min=1), help="Cap on token_budget.")
@click.option("--max-timeout-seconds", type=click.IntRange(min=1), help="Cap on timeout_seconds.")
@click.option("--max-budget-usd", type=click.FloatRange(min=0, min_open=True),
              help="Cap on max_budget_usd.")
@click.option("--cwd-root", "cwd_roots", multiple=True,
              help="A directory its tasks' cwd must be under (repeat; within agents.allowed_roots).")
@pass_state
@handle_errors
def create(state: CliState, name: str, **fields: Any) -> None:
    """Create a key; it is printed once and cannot be shown again."""
    given = {key: list(value) if isinstance(value, tuple) else value
             for key, value in fields.items() if value not in (None, ())}
    body = {"name": name, **given}
    created = state.client().request("POST", "/api/v1/keys", json=body)
    click.echo(created["key"])
    click.echo(f"key {name} ({created['role']}, tenant {created['tenant']}) created; store it now: "
               "it is not shown again", err=True)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def list_keys(state: CliState, as_json: bool) -> None:
    """Every managed key (never the secret)."""
    rows = state.client().request("GET", "/api/v1/keys")["keys"]
    if as_json:
        return print_json(rows)
    table = Table("name", "prefix", "role", "tenant", "concurrent", "tokens/day", "usd/day",
                  "limits", "revoked")
    for row in rows:
        table.add_row(row["name"], row["prefix"], row["role"], row["tenant"],
                      *(str(row[key]) if row[key] is not None else "-" for key in
                        ("max_concurrent", "tokens_per_day", "usd_per_day")),
                      limits_text(row), row["revoked_at"] or "")
    console.print(table)


def limits_text(row: dict[str, Any]) -> str:
    """The key's limits that are set, one ``field=value`` per line."""
    parts = [f"{field}={','.join(map(str, value)) if isinstance(value, list) else value}"
             for field, value in row.items() if field in KeyLimits.model_fields and value is not None]
    return "\n".join(parts) or "-"


@keys.command()
@click.argument("name")
@pass_state
@handle_errors
def revoke(state: CliState, name: str) -> None:
    """Revoke a key; every API process refuses it within seconds."""
    state.client().request("POST", f"/api/v1/keys/{name}/revoke")
    click.echo(f"key {name} revoked")

"""``cca keys create|list|revoke``: managed API keys, over the API with an admin key."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cca_cli.context import CliState, handle_errors, pass_state

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
@pass_state
@handle_errors
def create(state: CliState, name: str, **fields: Any) -> None:
    """Create a key; it is printed once and cannot be shown again."""
    body = {"name": name, **{key: value for key, value in fields.items() if value is not None}}
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
        return click.echo(json.dumps(rows, indent=2))
    table = Table("name", "prefix", "role", "tenant", "concurrent", "tokens/day", "usd/day", "revoked")
    for row in rows:
        table.add_row(row["name"], row["prefix"], row["role"], row["tenant"],
                      *(str(row[key]) if row[key] is not None else "-" for key in
                        ("max_concurrent", "tokens_per_day", "usd_per_day")),
                      row["revoked_at"] or "")
    console.print(table)


@keys.command()
@click.argument("name")
@pass_state
@handle_errors
def revoke(state: CliState, name: str) -> None:
    """Revoke a key; every API process refuses it within seconds."""
    state.client().request("POST", f"/api/v1/keys/{name}/revoke")
    click.echo(f"key {name} revoked")

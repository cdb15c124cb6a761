"""``cca roles list|show``: the agent roles a task may name, over the API."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from cca_cli.context import CliState, handle_errors, pass_state, print_json

console = Console()


@click.group()
def roles() -> None:
    """The agent roles a task may name (--role): the shipped ones and the configured ones."""


@roles.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def list_roles(state: CliState, as_json: bool) -> None:
    """Every role with its model, limits and permission mode."""
    data = state.client().roles()
    if as_json:
        print_json(data)
        return
    table = Table("role", "model", "budget", "timeout s", "mode", "description")
    for role in data["roles"]:
        table.add_row(role["name"], role["model"] or "(default)", str(role["token_budget"]),
                      str(role["timeout_seconds"]), role["permission_mode"], role["description"])
    console.print(table)


@roles.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def show_role(state: CliState, name: str, as_json: bool) -> None:
    """One role: its settings, allowed and denied tools, and its prompt."""
    role = state.client().role(name)
    if as_json:
        print_json(role)
        return
    click.echo(f"{role['name']}: {role['description']}")
    click.echo(f"model {role['model'] or '(fleet default)'} · budget {role['token_budget']} tokens · "
               f"timeout {role['timeout_seconds']}s · {role['permission_mode']}")
    click.echo(f"allowed: {', '.join(role['allowed_tools']) or '-'}")
    click.echo(f"denied:  {', '.join(role['denied_tools']) or '-'}")
    click.echo("\n" + (role["prompt"] or "(no prompt of its own)"))

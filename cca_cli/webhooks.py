"""``cca webhooks add|list|show|remove|deliveries``: endpoints told of the fleet's events."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from cca_cli.context import CliState, handle_errors, pass_state, print_json
from cca_core.webhooks.events import EVENTS

console = Console()


@click.group()
def webhooks() -> None:
    """Webhook endpoints of your tenant (an admin's are told of every tenant and the fleet)."""


@webhooks.command()
@click.argument("url")
@click.option("--event", "events", multiple=True, required=True, type=click.Choice(EVENTS),
              help="An event to send (repeat).")
@click.option("--description")
@click.option("--allow-private", is_flag=True,
              help="Admins only: allow a loopback or private-network target.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def add(state: CliState, url: str, events: tuple[str, ...], description: str | None,
        allow_private: bool, as_json: bool) -> None:
    """Add an endpoint; its signing secret is printed once."""
    body = {"url": url, "events": list(events), "allow_private": allow_private,
            **({"description": description} if description else {})}
    created = state.client().request("POST", "/api/v1/webhooks", json=body)
    if as_json:
        return print_json(created)
    click.echo(created["secret"])
    click.echo(f"webhook {created['id']} added ({', '.join(created['events'])}); the secret above "
               "signs every delivery (X-CCA-Signature) and is not shown again", err=True)


@webhooks.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def list_webhooks(state: CliState, as_json: bool) -> None:
    rows = state.client().request("GET", "/api/v1/webhooks")["webhooks"]
    if as_json:
        return print_json(rows)
    table = Table("id", "url", "events", "scope", "created by")
    for row in rows:
        table.add_row(row["id"], row["url"], ", ".join(row["events"]), row["scope"], row["created_by"] or "")
    console.print(table)


@webhooks.command()
@click.argument("webhook_id")
@pass_state
@handle_errors
def show(state: CliState, webhook_id: str) -> None:
    print_json(state.client().request("GET", f"/api/v1/webhooks/{webhook_id}"))


@webhooks.command()
@click.argument("webhook_id")
@pass_state
@handle_errors
def remove(state: CliState, webhook_id: str) -> None:
    """Remove an endpoint (and its deliveries)."""
    state.client().request("DELETE", f"/api/v1/webhooks/{webhook_id}")
    click.echo(f"webhook {webhook_id} removed", err=True)


@webhooks.command()
@click.argument("webhook_id")
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def deliveries(state: CliState, webhook_id: str, limit: int, as_json: bool) -> None:
    """Its latest deliveries: status, attempts and the last answer."""
    page = state.client().request("GET", f"/api/v1/webhooks/{webhook_id}/deliveries",
                                  params={"limit": limit})
    if as_json:
        return print_json(page)
    table = Table("id", "event", "status", "attempts", "last answer", "next attempt")
    for row in page["deliveries"]:
        last = row["history"][-1] if row["history"] else None
        answer = "-" if last is None else str(last["status_code"] or last["error"])
        table.add_row(str(row["id"]), row["event"], row["status"], str(row["attempts"]), answer,
                      row["next_attempt_at"] or "")
    console.print(table)

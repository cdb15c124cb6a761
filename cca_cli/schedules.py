"""``cca schedules add|list|show|edit|pause|resume|run|rm``: recurring agent jobs, over the API.

A schedule is named by its id or by its name.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from cca_cli.context import CliState, fail, handle_errors, pass_state, print_json
from cca_core.infra.api_client import CcaClient

console = Console()
F = TypeVar("F", bound=Callable[..., Any])
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
TASK_FIELDS = ("prompt", "role", "model", "priority", "queue", "token_budget", "timeout_seconds",
               "max_turns", "cwd")


def parse_every(value: str) -> int:
    """Seconds of ``90``, ``90s``, ``30m``, ``2h`` or ``1d``. Raises click.BadParameter."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", value)
    if not match or int(match.group(1)) < 1:
        raise click.BadParameter(f"{value!r} is not a duration such as 90, 90s, 30m, 2h or 1d")
    return int(match.group(1)) * UNITS[match.group(2) or "s"]


def resolve(client: CcaClient, ref: str) -> str:
    """The id of the schedule named ``ref`` (an id or a name)."""
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        pass
    found = client.schedules(name=ref)["schedules"]
    if not found:
        fail(f"no schedule named {ref}")
    if len(found) > 1:
        fail(f"{len(found)} schedules are named {ref} (of different owners): use the id")
    return str(found[0]["id"])


def when(schedule: dict[str, Any]) -> str:
    if schedule["cron"]:
        return f"cron {schedule['cron']} ({schedule['timezone']})"
    return f"every {schedule['interval_seconds']}s"


def print_schedule(schedule: dict[str, Any]) -> None:
    state = "enabled" if schedule["enabled"] else "[yellow]paused[/yellow]"
    console.print(f"[bold]{schedule['name']}[/bold]  {schedule['id']}  {state}")
    console.print(f"{when(schedule)} · overlap {schedule['overlap']} · catchup "
                  f"{schedule['catchup']} · expires {schedule['expires_seconds'] or 'never'}")
    console.print(f"next fire {schedule['next_fire_at'] or '-'} · last fire "
                  f"{schedule['last_fire_at'] or '-'} (task {schedule['last_task_id'] or '-'})"
                  f" · acts for key {schedule['created_by'] or '-'}")
    if schedule["last_skip_reason"]:
        console.print(f"last skip {schedule['last_skip_at']}: {schedule['last_skip_reason']}")
    console.print(f"task: {json.dumps(schedule['task'])}", markup=False, highlight=False)


def task_options(func: F) -> F:
    """The fields of the task each fire submits (as ``cca submit``)."""
    for option in reversed([
        click.option("--role"), click.option("--model"),
        click.option("--priority", type=click.Choice(["low", "normal", "high", "critical"])),
        click.option("--queue"),
        click.option("--budget", "token_budget", type=click.IntRange(min=1), help="Token budget."),
        click.option("--timeout", "timeout_seconds", type=click.IntRange(min=1), help="Seconds."),
        click.option("--max-turns", type=click.IntRange(min=1)), click.option("--cwd"),
    ]):
        func = option(func)
    return func


def timing_options(func: F) -> F:
    for option in reversed([
        click.option("--cron", help='5-field cron expression, e.g. "0 7 * * 1-5".'),
        click.option("--tz", "timezone", help="IANA time zone of --cron (default UTC)."),
        click.option("--every", help="Interval instead of cron: 90, 90s, 30m, 2h, 1d."),
        click.option("--overlap", type=click.Choice(["skip", "allow", "cancel_previous"]),
                     help="If the previous run is still going (default skip)."),
        click.option("--catchup", type=click.Choice(["skip_missed", "run_once"]),
                     help="Fires missed while no beat ran (default skip_missed)."),
        click.option("--expires", "expires_seconds", type=click.IntRange(min=1),
                     help="Drop a fire this many seconds after its time."),
    ]):
        func = option(func)
    return func


def split_fields(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(schedule fields, task fields) of the options given."""
    given = {name: value for name, value in fields.items() if value is not None}
    if "every" in given:
        given["interval_seconds"] = parse_every(given.pop("every"))
    task = {name: given.pop(name) for name in TASK_FIELDS if name in given}
    return given, task


@click.group()
def schedules() -> None:
    """Recurring agent jobs: cron or interval, fired once by the beat."""


@schedules.command()
@click.argument("name")
@click.argument("prompt")
@timing_options
@task_options
@click.option("--paused", is_flag=True, help="Create it paused.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def add(state: CliState, name: str, prompt: str, paused: bool, as_json: bool, **fields: Any) -> None:
    """Create schedule NAME that submits PROMPT (give --cron or --every)."""
    body, task = split_fields(fields)
    schedule = state.client().create_schedule(
        {"name": name, **body, "task": {"prompt": prompt, **task}, "enabled": not paused})
    print_json(schedule) if as_json else print_schedule(schedule)


@schedules.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def list_schedules(state: CliState, as_json: bool) -> None:
    """Schedules by name."""
    page = state.client().schedules()
    if as_json:
        return print_json(page)
    table = Table("name", "when", "state", "next fire", "last fire", "key", "last skip", "id")
    for item in page["schedules"]:
        table.add_row(item["name"], when(item), "enabled" if item["enabled"] else "paused",
                      (item["next_fire_at"] or "-")[:19], (item["last_fire_at"] or "-")[:19],
                      item["created_by"] or "-", item["last_skip_reason"] or "", item["id"])
    console.print(table)


@schedules.command()
@click.argument("ref")
@click.option("--runs", type=click.IntRange(0, 200), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def show(state: CliState, ref: str, runs: int, as_json: bool) -> None:
    """Show a schedule and its latest runs."""
    client = state.client()
    schedule_id = resolve(client, ref)
    schedule = client.schedule(schedule_id)
    history = client.schedule_runs(schedule_id, limit=runs)["runs"] if runs else []
    if as_json:
        return print_json({**schedule, "runs": history})
    print_schedule(schedule)
    table = Table("scheduled for", "status", "task", "cost")
    for run in history:
        table.add_row((run["scheduled_for"] or "")[:19], run["status"], run["task_id"],
                      f"${run['cost_usd']:.4f}")
    console.print(table)


@schedules.command()
@click.argument("ref")
@click.option("--name", "new_name", help="Rename it.")
@click.option("--prompt")
@timing_options
@task_options
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def edit(state: CliState, ref: str, new_name: str | None, prompt: str | None, as_json: bool,
         **fields: Any) -> None:
    """Change a schedule; the next fire follows at once, no restart needed."""
    body, task = split_fields({**fields, "prompt": prompt, "name": new_name})
    if task:
        body["task"] = task
    if not body:
        fail("nothing to change: give at least one option", 2)
    client = state.client()
    schedule = client.update_schedule(resolve(client, ref), body)
    print_json(schedule) if as_json else print_schedule(schedule)


@schedules.command()
@click.argument("ref")
@pass_state
@handle_errors
def pause(state: CliState, ref: str) -> None:
    """Stop firing (missed fires are not caught up on resume)."""
    client = state.client()
    click.echo(f"{client.pause_schedule(resolve(client, ref))['name']}: paused")


@schedules.command()
@click.argument("ref")
@pass_state
@handle_errors
def resume(state: CliState, ref: str) -> None:
    """Fire again, from the next fire time on."""
    client = state.client()
    schedule = client.resume_schedule(resolve(client, ref))
    click.echo(f"{schedule['name']}: enabled, next fire {schedule['next_fire_at']}")


@schedules.command()
@click.argument("ref")
@pass_state
@handle_errors
def run(state: CliState, ref: str) -> None:
    """Submit the schedule's task now; prints the task id."""
    client = state.client()
    click.echo(client.run_schedule(resolve(client, ref))["id"])


@schedules.command()
@click.argument("ref")
@pass_state
@handle_errors
def rm(state: CliState, ref: str) -> None:
    """Delete a schedule (the tasks it created stay)."""
    client = state.client()
    client.delete_schedule(resolve(client, ref))
    click.echo(f"{ref}: deleted")

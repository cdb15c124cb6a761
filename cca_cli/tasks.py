"""Commands over the task API: submit, tasks list|show|cancel|continue|events|attempts, status,
workers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cca_cli.context import CliState, handle_errors, pass_state, print_json
from cca_cli.follow import Renderer
from cca_core.infra.api_client import ApiError, CcaClient
from cca_core.tasks.status import TERMINAL_STATUSES, TaskStatus

console = Console()
POLL_S = 0.5


def _summary(task: dict[str, Any]) -> str:
    usage = task["usage"]
    children = f" · {len(task['children'])} children" if task.get("children") else ""
    return (f"{task['status']}{children} · turns {task['num_turns']} · tokens in "
            f"{usage['input_tokens']} out {usage['output_tokens']} · ${task['cost_usd']:.4f}")


def print_task(task: dict[str, Any]) -> None:
    console.print(f"[bold]{task['id']}[/bold]  {_summary(task)}")
    if task.get("schedule_id"):
        console.print(f"made by schedule {task['schedule_id']} for its fire at {task['scheduled_for']}",
                      markup=False, highlight=False)
    if task.get("error"):
        retrying = f" (runs again at {task['retry_at']})" if task.get("retry_at") else ""
        console.print(f"[red]error[/red] {task['error']['code']}: {task['error']['message']}{retrying}",
                      markup=True, highlight=False)
    if task.get("permission_denials"):
        console.print(f"permission denials: {len(task['permission_denials'])}")
    if task.get("result"):
        console.print(task["result"], markup=False, highlight=False)


def wait_for(client: CcaClient, task_id: str, quiet: bool) -> dict[str, Any]:
    """Poll until the task ends, showing a live spinner unless ``quiet``."""
    task = client.task(task_id)
    if quiet:
        while task["status"] not in TERMINAL_STATUSES:
            time.sleep(POLL_S)
            task = client.task(task_id)
        return task
    with console.status(_summary(task)) as spinner:
        while task["status"] not in TERMINAL_STATUSES:
            time.sleep(POLL_S)
            task = client.task(task_id)
            spinner.update(_summary(task))
    return task


@click.command()
@click.argument("prompt")
@click.option("--wait", is_flag=True, help="Wait for the result, showing progress.")
@click.option("--follow", is_flag=True, help="Show the run live (text, tool calls, denials, "
              "retries, tokens and cost), then the result.")
@click.option("--role")
@click.option("--model")
@click.option("--priority", type=click.Choice(["low", "normal", "high", "critical"]))
@click.option("--queue")
@click.option("--budget", "token_budget", type=click.IntRange(min=1), help="Token budget.")
@click.option("--timeout", "timeout_seconds", type=click.IntRange(min=1), help="Seconds.")
@click.option("--max-turns", type=click.IntRange(min=1))
@click.option("--cwd", type=click.Path(file_okay=False, resolve_path=True),
              help="Run in this directory as it is (it must be inside the fleet's allowed roots).")
@click.option("--repo", type=click.Path(file_okay=False, resolve_path=True),
              help="Work on this git repository, in a clone on branch cca/<task id> (default: "
                   "the repository the command runs in, if any).")
@click.option("--base", help="With a repository: the branch, tag or commit to start from.")
@click.option("--push", is_flag=True, default=None,
              help="With a repository: push the task's branch to its remote when it succeeds.")
@click.option("--no-repo", is_flag=True, help="Do not work on the repository the command runs in.")
@click.option("--idempotency-key")
@click.option("--mode", type=click.Choice(["single", "coordinate"]),
              help="coordinate: a coordinator splits it among specialists, run in parallel.")
@click.option("--memory", "recall_k", type=click.IntRange(0, 20),
              help="Put the K most relevant memories of earlier tasks before the prompt.")
@click.option("--allowed-tool", "allowed_tools", multiple=True,
              help="A tool rule the agent may use without asking, e.g. 'Bash(git *)' (repeat).")
@click.option("--denied-tool", "denied_tools", multiple=True, help="A tool rule it may not use (repeat).")
@click.option("--permission-mode", type=click.Choice(["allowlist", "sandbox", "dangerous"]))
@click.option("--max-budget-usd", type=click.FloatRange(min=0, min_open=True),
              help="Stop the run once it has cost this much.")
@click.option("--json-schema", "json_schema", callback=lambda ctx, param, value: json_option(value, param),
              help="Structured output: a JSON schema (inline JSON, or @FILE).")
@click.option("--metadata", "metadata", multiple=True, callback=lambda ctx, param, value: pairs(value, param),
              help="KEY=VALUE stored with the task (repeat).")
@click.option("--retries", callback=lambda ctx, param, value: json_option(value, param),
              help='Retry rules per failure class, e.g. \'{"rate_limited": {"attempts": 8}}\' (or @FILE).')
@click.option("--parent", "parent_id", help="The task this one is a child of.")
@click.option("--json", "as_json", is_flag=True, help="Print the task as JSON.")
@pass_state
@handle_errors
def submit(state: CliState, prompt: str, wait: bool, follow: bool, as_json: bool,
           idempotency_key: str | None,
           recall_k: int | None, no_repo: bool, **fields: Any) -> None:
    """Submit an agent task (PROMPT) to the fleet. Run inside a git repository, the task works
    on that repository (in a clone of its own, on branch cca/<task id>) unless --no-repo or
    --cwd says otherwise."""
    client = state.client()
    body = {"prompt": prompt, **{name: list(value) if isinstance(value, tuple) else value
                                 for name, value in fields.items() if value not in (None, (), {})}}
    implied = None
    if not no_repo and body.get("repo") is None and body.get("cwd") is None:
        implied = repository_of(Path.cwd())
        body["repo"] = str(implied) if implied else None
    body = {name: value for name, value in body.items() if value is not None}
    if recall_k is not None:
        body["memory"] = {"k": recall_k}
    try:
        task = client.submit(body, idempotency_key=idempotency_key)
    except ApiError as exc:
        if implied is not None and exc.field == "repo":
            raise click.ClickException(f"{exc.message} (this command runs in the repository "
                                       f"{implied}; pass --no-repo to work without it, or let "
                                       "the fleet allow it: cca up --allow DIR)") from None
        raise
    if implied is not None and not as_json:
        click.echo(f"working on {implied} on branch {task['branch']} (cca tasks diff {task['id']})",
                   err=True)
    if not as_json:
        show_estimate(task)
    report(client, task, wait, as_json, follow=follow)


def json_option(value: str | None, param: click.Parameter) -> Any:
    """A flag's JSON value, inline or from ``@FILE``; a bad one names the flag."""
    if value is None:
        return None
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
        return json.loads(text)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"not JSON (inline, or @FILE): {exc}", param=param) from None


def pairs(values: tuple[str, ...], param: click.Parameter) -> dict[str, str]:
    """``KEY=VALUE`` flags as a mapping."""
    found = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r}: expected KEY=VALUE", param=param)
        found[key] = text
    return found


def show_estimate(task: dict[str, Any]) -> None:
    """What similar tasks took, and where that exceeds the task's limits (on stderr)."""
    estimate = task.get("estimate")
    if estimate:
        seconds, tokens, cost = (estimate[name] for name in ("duration_seconds", "tokens", "cost_usd"))
        click.echo(f"estimate from {estimate['samples']} similar tasks: {seconds['p50']:g} s "
                   f"(p90 {seconds['p90']:g}), {tokens['p50']:g} tokens (p90 {tokens['p90']:g}), "
                   f"${cost['p50']:.4f} (p90 ${cost['p90']:.4f})", err=True)
    for warning in task.get("warnings") or []:
        click.echo(f"warning: {warning}", err=True)


def repository_of(directory: Path) -> Path | None:
    """The top directory of the git repository ``directory`` is in, if any."""
    for candidate in (directory, *directory.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def report(client: CcaClient, task: dict[str, Any], wait: bool, as_json: bool, *,
           follow: bool = False) -> None:
    """Print a submitted task (its id, or with ``wait`` or ``follow`` how it ended: exit 1
    unless it succeeded)."""
    if follow:
        task = follow_live(client, task["id"], as_json)
    elif wait:
        task = wait_for(client, task["id"], quiet=as_json)
    if as_json and not follow:
        print_json(task)
    elif wait or follow:
        print_task(task)
    else:
        click.echo(task["id"])
    if (wait or follow) and task["status"] != "succeeded":
        raise SystemExit(1)


def follow_live(client: CcaClient, task_id: str, as_json: bool) -> dict[str, Any]:
    """Show the task's stream until it ends (as JSON lines with ``as_json``); return the task."""
    renderer = Renderer()
    for event in client.follow(task_id):
        if as_json:
            click.echo(json.dumps({"event": event.event, "id": event.id, "data": event.data}))
            continue
        for line in renderer.lines(event):
            click.echo(line)
    return client.task(task_id)


@click.group()
def tasks() -> None:
    """List, show, cancel and follow tasks."""


@tasks.command("list")
@click.option("--status")
@click.option("--role")
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
@click.option("--cursor")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def list_tasks(state: CliState, as_json: bool, **params: Any) -> None:
    """Newest tasks first."""
    page = state.client().tasks(**params)
    if as_json:
        return print_json(page)
    table = Table("id", "status", "role", "turns", "tokens", "cost", "created", "schedule")
    for task in page["tasks"]:
        usage = task["usage"]
        waiting = f" ({task['waiting_for']})" if task.get("waiting_for") else ""
        table.add_row(task["id"], task["status"] + waiting, task["role"] or "", str(task["num_turns"]),
                      str(usage["input_tokens"] + usage["output_tokens"]),
                      f"${task['cost_usd']:.4f}", task["created_at"][:19],
                      (task.get("schedule_id") or "")[:8])
    console.print(table)
    if page["next_cursor"]:
        console.print(f"more: --cursor {page['next_cursor']}")


@tasks.command()
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def show(state: CliState, task_id: str, as_json: bool) -> None:
    """Show one task."""
    task = state.client().task(task_id)
    print_json(task) if as_json else print_task(task)


@tasks.command()
@click.argument("task_id")
@pass_state
@handle_errors
def cancel(state: CliState, task_id: str) -> None:
    """Cancel a queued or running task."""
    task = state.client().cancel(task_id)
    click.echo(f"{task['id']}: {task['status']}"
               + (" (stop requested)" if task["status"] == TaskStatus.RUNNING else ""))


@tasks.command("follow")
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print each stream event as a JSON line.")
@pass_state
@handle_errors
def follow_command(state: CliState, task_id: str, as_json: bool) -> None:
    """Show a task live, from its first event: text, tool calls, denials, retries, tokens and
    cost; exit 1 unless it succeeded."""
    task = follow_live(state.client(), task_id, as_json)
    if not as_json:
        print_task(task)
    if task["status"] != "succeeded":
        raise SystemExit(1)


@tasks.command()
@click.argument("task_id")
@click.option("--after", type=click.IntRange(min=0), default=0)
@pass_state
@handle_errors
def events(state: CliState, task_id: str, after: int) -> None:
    """Print the stream-json events recorded so far, one JSON object per line."""
    client = state.client()
    while True:
        page = client.events(task_id, after=after)
        for event in page["events"]:
            click.echo(json.dumps(event["data"]))
        if page["next_after"] is None:
            return
        after = page["next_after"]


@tasks.command("continue")
@click.argument("task_id")
@click.argument("prompt")
@click.option("--wait", is_flag=True, help="Wait for the result, showing progress.")
@click.option("--budget", "token_budget", type=click.IntRange(min=1), help="Token budget.")
@click.option("--timeout", "timeout_seconds", type=click.IntRange(min=1), help="Seconds.")
@click.option("--max-turns", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print the new task as JSON.")
@pass_state
@handle_errors
def continue_task(state: CliState, task_id: str, prompt: str, wait: bool, as_json: bool,
                  **limits: Any) -> None:
    """Continue a finished task with PROMPT: a new task that forks its session, on any worker
    (the original stays as it ended)."""
    client = state.client()
    follow_up = {"prompt": prompt, **{name: value for name, value in limits.items() if value is not None}}
    report(client, client.continue_task(task_id, follow_up), wait, as_json)


@tasks.command()
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def attempts(state: CliState, task_id: str, as_json: bool) -> None:
    """Every run of a task: worker, how it ended, tokens, cost, when it was retried."""
    data = state.client().attempts(task_id)
    if as_json:
        return print_json(data)
    table = Table("#", "worker", "started", "status", "error", "tokens", "cost", "retried at")
    for run in data["attempts"]:
        usage = run["usage"]
        table.add_row(str(run["attempt"]), run["worker"] or "", run["started_at"][:19],
                      run["status"] or ("lost" if run["finished_at"] is None else ""),
                      run["error"]["code"] if run["error"] else "",
                      str(usage["input_tokens"] + usage["output_tokens"]), f"${run['cost_usd']:.4f}",
                      (run["retry_at"] or "")[:19])
    console.print(table)


@click.command()
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def status(state: CliState, as_json: bool) -> None:
    """Fleet status: workers, slots, queues, tasks."""
    data = state.client().status()
    if as_json:
        return print_json(data)
    workers = data["workers"]
    console.print(f"cca {data['version']} · workers {workers['online']} · slots "
                  f"{workers['slots_busy']}/{workers['slots_total']} busy")
    console.print("queues: " + ", ".join(f"{q}={n}" for q, n in data["queues"].items()))
    console.print("tasks: " + ", ".join(f"{s}={n}" for s, n in data["tasks"].items()))


@click.command()
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def workers(state: CliState, as_json: bool) -> None:
    """Workers online and their slots."""
    data = state.client().workers()
    if as_json:
        return print_json(data)
    table = Table("hostname", "slots busy", "slots", "queues", "paused")
    for worker in data["workers"]:
        table.add_row(worker["hostname"], str(worker["slots_busy"]), str(worker["slots_total"]),
                      ",".join(worker["queues"]), "yes" if worker["paused_for_budget"] else "")
    console.print(table)


@click.command()
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def credentials(state: CliState, as_json: bool) -> None:
    """Model API credentials the workers lend (admin): agents, windows, today's use."""
    data = state.client().credentials()
    if as_json:
        return print_json(data)
    table = Table("name", "agents", "max", "parked until", "requests today", "tokens today")
    for row in data["credentials"]:
        today = row["today"]
        tokens = sum(count for name, count in today.items() if name.endswith("tokens"))
        table.add_row(row["name"], str(row["agents"]), str(row["max_agents"] or "-"),
                      (row["parked_until"] or "")[:19], str(today.get("requests", 0)), str(tokens))
    console.print(table)


@tasks.command("diff")
@click.argument("task_id")
@click.option("--stat", "stat_only", is_flag=True, help="Commits and counts only.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def diff(state: CliState, task_id: str, stat_only: bool, as_json: bool) -> None:
    """What a repository task's branch holds over its base: its commits and diff."""
    found = state.client().diff(task_id)
    if as_json:
        return print_json(found)
    pushed = {None: "", True: ", pushed", False: f", not pushed: {found['push_error']}"}[found["pushed"]]
    click.echo(f"{found['branch']} ({found['base'][:12]}..{found['head'][:12]}): {found['files']} files, "
               f"+{found['insertions']} -{found['deletions']}{pushed}")
    for commit in found["commits"]:
        click.echo(f"  {commit['sha'][:12]} {commit['subject']}")
    if not stat_only:
        click.echo(found["diff"], nl=False)
        if found["truncated"]:
            click.echo("[the diff is cut at 1 MB: see the branch in the repository]")

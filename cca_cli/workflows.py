"""``cca workflows run FILE | show ID | list | cancel ID``: graphs of named tasks, over the
API. A workflow file is YAML (or JSON): the body of ``POST /api/v1/workflows``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from cca_cli.context import CliState, fail, handle_errors, pass_state, print_json
from cca_core.infra.api_client import CcaClient

console = Console()
POLL_S = 1.0
MARKS = {"queued": ("◌", "dim"), "running": ("●", "yellow"), "succeeded": ("✓", "green"),
         "failed": ("✗", "red"), "cancelled": ("⊘", "magenta"), "timed_out": ("⌛", "red"),
         "budget_exceeded": ("$", "red")}


@click.group()
def workflows() -> None:
    """Workflows: named tasks with dependencies, run as one graph."""


def read_workflow(path: Path) -> dict[str, Any]:
    """The workflow a YAML or JSON file holds; a file that is not one fails naming it."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", 2)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        fail(f"{path} is not valid YAML{line}: {getattr(exc, 'problem', exc)}", 2)
    if not isinstance(data, dict):
        fail(f"{path} must hold a mapping with name and tasks (see cca workflows run --help)", 2)
    return data


@workflows.command("run")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--wait", is_flag=True, help="Follow the graph live until it ends.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def run(state: CliState, file: Path, wait: bool, as_json: bool) -> None:
    """Submit the workflow in FILE (YAML): name, failure_policy, token_budget, budget_usd and
    tasks, each a task (prompt, role, ...) with a name and depends_on."""
    client = state.client()
    workflow = client.submit_workflow(read_workflow(file))
    if wait:
        workflow = follow(client, workflow, quiet=as_json)
    if as_json:
        print_json(workflow)
    elif not wait:
        console.print(render(workflow))
    if wait and workflow["status"] != "succeeded":
        raise SystemExit(1)


@workflows.command("show")
@click.argument("workflow_id")
@click.option("--watch/--no-watch", default=True,
              help="Follow a running workflow live (default), or print it once.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def show(state: CliState, workflow_id: str, watch: bool, as_json: bool) -> None:
    """The graph: each step's status, worker, usage and cost, and the totals."""
    client = state.client()
    workflow = client.workflow(workflow_id)
    if as_json:
        return print_json(workflow)
    if watch and workflow["status"] == "running":
        follow(client, workflow, quiet=False)
    else:
        console.print(render(workflow))


@workflows.command("list")
@click.option("--status")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def list_workflows(state: CliState, status: str | None, limit: int, as_json: bool) -> None:
    """Workflows, newest first."""
    page = state.client().workflows(status=status, limit=limit)
    if as_json:
        return print_json(page)
    table = Table("id", "name", "status", "created")
    for found in page["workflows"]:
        table.add_row(found["id"], found["name"], found["status"], found["created_at"])
    console.print(table)


@workflows.command("cancel")
@click.argument("workflow_id")
@pass_state
@handle_errors
def cancel(state: CliState, workflow_id: str) -> None:
    """Cancel every step: those not started end now, running ones stop."""
    console.print(render(state.client().cancel_workflow(workflow_id)))


def follow(client: CcaClient, workflow: dict[str, Any], quiet: bool) -> dict[str, Any]:
    """Poll until the workflow ends, redrawing its tree in place unless ``quiet``."""
    with Live(render(workflow), console=console, auto_refresh=False,
              transient=False) if not quiet else _Silent() as live:
        while workflow["status"] == "running":
            time.sleep(POLL_S)
            workflow = client.workflow(workflow["id"])
            live.update(render(workflow), refresh=True)
    return workflow


class _Silent:
    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


def render(workflow: dict[str, Any]) -> Group:
    """The workflow as a tree: the workflow, then each step after its dependencies."""
    mark, colour = MARKS.get(workflow["status"], ("?", ""))
    usage = workflow["usage"]
    title = Text.assemble((f"{mark} {workflow['name']}", f"bold {colour}"),
                          f"  {workflow['id']}  {workflow['status']} · "
                          f"{usage['input_tokens'] + usage['output_tokens']} tokens · "
                          f"${workflow['cost_usd']:.4f}")
    tree = Tree(title)
    for step in workflow["tasks"]:
        tree.add(_step_line(step))
    parts: list[Any] = [tree]
    if workflow.get("error"):
        parts.append(Text(f"{workflow['error']['code']}: {workflow['error']['message']}",
                          style="red"))
    return Group(*parts)


def _step_line(step: dict[str, Any]) -> Text:
    mark, colour = MARKS.get(step["status"], ("?", ""))
    usage = step["usage"]
    line = Text.assemble((f"{mark} {step['name']}", colour), f"  {step['role'] or '-'}  ",
                         (step["status"], colour))
    if step["waiting_for"]:
        line.append(f" (waiting for {', '.join(step['depends_on'])})", style="dim")
    elif step["depends_on"]:
        line.append(f"  after {', '.join(step['depends_on'])}", style="dim")
    if step["worker"]:
        line.append(f"  on {step['worker']}")
    if step["status"] != "queued":
        line.append(f"  {usage['input_tokens'] + usage['output_tokens']} tokens "
                    f"${step['cost_usd']:.4f}")
    if step["error"]:
        line.append(f"  {step['error']['code']}", style="red")
    line.append(f"  {step['task_id']}", style="dim")
    return line

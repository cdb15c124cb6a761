"""``cca memory search|store|stats|export|import|reembed``: the fleet's memory, over the API."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from cca_cli.context import CliState, fail, handle_errors, pass_state, print_json

console = Console(soft_wrap=True)  # a long path stays on one line
IMPORT_BATCH = 500  # memories per request (the API takes up to 1000)
JOB_ENDED = ("succeeded", "failed", "cancelled")


@click.group()
def memory() -> None:
    """Memory: what earlier tasks learned, searched by meaning and words."""


@memory.command("search")
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(1, 50), default=5, show_default=True)
@click.option("--kind", help="Only memories of this kind (outcome, note...).")
@click.option("--tag", "tags", multiple=True, help="Only memories with this tag (repeatable).")
@click.option("--mode", type=click.Choice(["hybrid", "vector", "full_text"]), default="hybrid",
              show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def search(state: CliState, query: str, k: int, kind: str | None, tags: tuple[str, ...],
           mode: str, as_json: bool) -> None:
    """The memories that best answer QUERY."""
    body: dict[str, Any] = {"query": query, "k": k, "mode": mode, "tags": list(tags)}
    if kind:
        body["kind"] = kind
    found = state.client().memory_search(body)
    if as_json:
        print_json(found)
        return
    say_degraded(found)
    if not found["results"]:
        console.print("no memories match")
    for hit in found["results"]:
        console.print(f"[bold]{hit['kind']}[/] {' '.join('#' + t for t in hit['tags'])} "
                      f"[dim]{hit['id']} ✓{hit['successes']} ✗{hit['failures']}[/]",
                      highlight=False)
        console.print(hit["content"], markup=False, highlight=False)
        console.print()


def say_degraded(found: dict[str, Any]) -> None:
    if found.get("degraded"):
        console.print(f"[yellow]{found['degraded']}[/]", highlight=False)


@memory.command("store")
@click.argument("content")
@click.option("--kind", default="note", show_default=True)
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@pass_state
@handle_errors
def store(state: CliState, content: str, kind: str, tags: tuple[str, ...]) -> None:
    """Store CONTENT as a memory ("-" reads it from stdin)."""
    text = sys.stdin.read() if content == "-" else content
    stored = state.client().memory_store({"content": text, "kind": kind, "tags": list(tags)})
    say_degraded(stored)
    click.echo(stored["ids"][0])


@memory.command("stats")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def stats(state: CliState, as_json: bool) -> None:
    """How many memories there are, by kind and vector space."""
    found = state.client().memory_stats()
    if as_json:
        print_json(found)
        return
    console.print(f"{found['total']} memories; {found['embedded']} in {found['space']}, "
                  f"{found['not_embedded']} found by full text only", highlight=False)
    for kind, count in sorted(found["by_kind"].items()):
        console.print(f"  {kind}: {count}", highlight=False)


@memory.command("export")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False), default="-")
@pass_state
@handle_errors
def export(state: CliState, file: Path) -> None:
    """Write every memory as JSON lines to FILE (default stdout)."""
    lines = state.client().memory_export()
    if str(file) == "-":
        click.echo(lines, nl=False)
    else:
        file.write_text(lines)
        click.echo(f"{lines.count(chr(10))} memories written to {file}", err=True)


@memory.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@pass_state
@handle_errors
def import_(state: CliState, file: Path) -> None:
    """Store the memories of a JSON-lines FILE (as export writes) in your tenant."""
    records = []
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            fail(f"{file} line {number} is not JSON", 2)
        if not isinstance(record, dict) or not isinstance(record.get("content"), str):
            fail(f"{file} line {number} has no content", 2)
        records.append({key: record[key] for key in ("content", "kind", "tags") if key in record})
    client = state.client()
    stored = 0
    for start in range(0, len(records), IMPORT_BATCH):
        answer = client.memory_import(records[start:start + IMPORT_BATCH])
        say_degraded(answer)
        stored += len(answer["ids"])
    click.echo(f"{stored} memories imported")


@memory.command("reembed")
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def reembed(state: CliState, wait: bool, as_json: bool) -> None:
    """Embed every memory and code chunk into the configured model (embeddings.model), on
    the workers; until each is done it is found by full text only."""
    client = state.client()
    job = client.memory_reembed()
    if wait:
        job = wait_for_job(client.reembed_job, job, quiet=as_json)
    print_json(job) if as_json else click.echo(f"job {job['id']}: {job['status']} {job['progress']}")


def wait_for_job(get: Any, job: dict[str, Any], *, quiet: bool) -> dict[str, Any]:
    """Poll a background job until it ends, printing its progress on stderr."""
    while job["status"] not in JOB_ENDED:
        time.sleep(1.0)
        job = get(str(job["id"]))
        if not quiet:
            progress = job.get("progress") or {}
            click.echo(f"\r{job['status']} {progress.get('percent', '')}% "
                       f"{progress.get('chunks', progress.get('code_chunks', ''))} ", nl=False,
                       err=True)
    if not quiet:
        click.echo(err=True)
    return job


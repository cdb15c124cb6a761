"""``cca code index|status|search``: the fleet's code index, over the API."""

from __future__ import annotations

import os
from typing import Any

import click
from rich.console import Console

from cca_cli.context import CliState, handle_errors, pass_state, print_json
from cca_cli.memory import say_degraded, wait_for_job

console = Console(soft_wrap=True)  # a long path stays on one line


@click.group()
def code() -> None:
    """Code index: a codebase cut into functions, classes and methods, searched by meaning."""


@code.command("index")
@click.argument("path", type=click.Path(file_okay=False), default=".")
@click.option("--ext", "extensions", multiple=True, help="Index only files ending so, e.g. .py "
              "(repeatable; default: code.extensions).")
@click.option("--exclude", "excludes", multiple=True, help="A directory or file name or glob "
              "to skip (repeatable; default: code.excludes).")
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def index(state: CliState, path: str, extensions: tuple[str, ...], excludes: tuple[str, ...],
          wait: bool, as_json: bool) -> None:
    """Index PATH (inside agents.allowed_roots) on the workers."""
    body: dict[str, Any] = {"path": os.path.abspath(path)}
    if extensions:
        body["extensions"] = list(extensions)
    if excludes:
        body["excludes"] = list(excludes)
    client = state.client()
    job = client.code_index(body)
    if wait:
        job = wait_for_job(client.code_index_job, job, quiet=as_json)
    print_json(job) if as_json else _say(job)


@code.command("status")
@click.argument("job_id", required=False)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def status(state: CliState, job_id: str | None, as_json: bool) -> None:
    """One index job's progress, or (without JOB_ID) the index's contents and recent jobs."""
    client = state.client()
    if job_id:
        job = client.code_index_job(job_id)
        print_json(job) if as_json else _say(job)
        return
    found, jobs = client.code_stats(), client.code_index_jobs()["jobs"]
    if as_json:
        print_json({"stats": found, "jobs": jobs})
        return
    console.print(f"{found['files']} files, {found['chunks']} chunks ({found['embedded']} in "
                  f"{found['space']})", highlight=False)
    for root in found["roots"]:
        console.print(f"  {root['root']}: {root['files']} files, {root['chunks']} chunks",
                      highlight=False)
    for job in jobs[:5]:
        _say(job)


@code.command("search")
@click.argument("query")
@click.option("--language", help="Only this language (python, go, typescript...).")
@click.option("--path-prefix", help="Only files under this path (relative to the indexed root).")
@click.option("--limit", type=click.IntRange(1, 50), default=10, show_default=True)
@click.option("--mode", type=click.Choice(["hybrid", "vector", "full_text"]), default="hybrid",
              show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def search(state: CliState, query: str, language: str | None, path_prefix: str | None,
           limit: int, mode: str, as_json: bool) -> None:
    """The code that best answers QUERY."""
    body: dict[str, Any] = {"query": query, "limit": limit, "mode": mode}
    if language:
        body["language"] = language
    if path_prefix:
        body["path_prefix"] = path_prefix
    found = state.client().code_search(body)
    if as_json:
        print_json(found)
        return
    say_degraded(found)
    for hit in found["results"]:
        where = f"{hit['path']}:{hit['start_line']}-{hit['end_line']}"
        console.print(f"[bold]{where}[/] {hit['kind']} {hit['symbol'] or ''} "
                      f"[dim]{hit['score']:.4f}[/]", highlight=False)
    if not found["results"]:
        console.print("nothing indexed matches (index a tree with `cca code index PATH`)")


def _say(job: dict[str, Any]) -> None:
    progress = job.get("progress") or {}
    detail = (f"{progress.get('files_done', 0)}/{progress.get('files_total', 0)} files, "
              f"{progress.get('chunks', 0)} chunks, {progress.get('errors', 0)} errors")
    error = f" — {job['error']}" if job.get("error") else ""
    console.print(f"{job['id']} {job['status']}: {detail}{error}", highlight=False, markup=False)

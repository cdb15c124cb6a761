"""Commands that run or inspect fleet processes: config, db, worker, api."""

from __future__ import annotations

import shutil
import socket
from typing import Any

import click

from cca_cli.context import CliState, data_dir_option, fail, handle_errors, pass_state, print_json
from cca_core.access.safe_defaults import refuse_unsafe, unsafe_settings
from cca_core.infra.config import config_files, masked
from cca_core.settings import Settings


@click.group()
def config() -> None:
    """Show or check the merged configuration."""


@config.command("show")
@pass_state
@handle_errors
def config_show(state: CliState) -> None:
    """Print the merged configuration as JSON, secrets masked."""
    files = [str(path) for path in config_files()]
    print_json({"files": files, "settings": masked(state.settings)})


@config.command("check")
@pass_state
@handle_errors
def config_check(state: CliState) -> None:
    """Validate the configuration, name what would open the fleet (the API and workers refuse
    to start with it) and warn about settings that do not do what they say."""
    errors = unsafe_settings(state.settings)
    warnings = config_warnings(state.settings)
    for error in errors:
        click.echo(f"error: {error.message} ({error.field})")
    for warning in warnings:
        click.echo(f"warning: {warning}")
    if errors:
        fail(f"configuration is unsafe ({len(errors)} error(s), {len(warnings)} warning(s))")
    click.echo(f"configuration is valid ({len(warnings)} warning(s))")


@config.command("reload")
@click.option("--wait", "wait_seconds", type=click.FloatRange(0, 30), default=3.0, show_default=True,
              help="Seconds to wait for the workers' reports.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def config_reload(state: CliState, wait_seconds: float, as_json: bool) -> None:
    """Reload the configuration in every API process and worker, without a restart: each
    applies the reloadable keys and names those that need one."""
    answer = state.client().reload_config(wait_seconds)
    if as_json:
        return print_json(answer)
    for report in answer["processes"]:
        line = f"{report['process']}: reloaded {', '.join(report['reloaded']) or 'nothing'}"
        if report["needs_restart"]:
            line += f"; needs a restart: {', '.join(report['needs_restart'])}"
        if report["error"]:
            line += f"; kept the old configuration: {report['error']}"
        click.echo(line)
    for process in answer["not_reported"]:
        click.echo(f"{process}: no report yet (it applies the reload before its next run)")


def config_warnings(settings: Settings) -> list[str]:
    from cca_core.infra.connections import connection_warning
    from cca_core.rules import ignored_rules

    warnings: list[str] = []
    sections = {"agents.permissions": settings.agents.permissions}
    sections.update({f"agents.roles.{name}.permissions": role.permissions
                     for name, role in settings.agents.roles.items() if role.permissions})
    for where, perms in sections.items():
        for rule in ignored_rules([*perms.allowed_tools, *perms.denied_tools]):
            warnings.append(f"{where}: {rule} is ignored by the claude CLI; cca passes "
                            f"Edit({rule[6:-1]}) instead (write rules use Edit)")
        if perms.mode == "dangerous":
            warnings.append(f"{where}.mode = dangerous turns off every permission check but denies")
    if settings.agents.confinement == "none":
        warnings.append("agents.confinement = none: agents run as the worker's user and can read "
                        "what it can (cca's keys, other tasks' workspaces); see docs/security.md")
    if settings.agents.permissions.allow_dangerous:
        warnings.append("agents.permissions.allow_dangerous = true: tasks may run without checks")
    if settings.daemon.require_auth and not settings.daemon.api_keys:
        warnings.append("daemon.require_auth is true but daemon.api_keys is empty")
    if any(len(key) < 16 for key in settings.daemon.api_keys):
        warnings.append("daemon.api_keys: a key shorter than 16 characters is easy to guess")
    if not shutil.which(settings.agents.claude_path):
        warnings.append(f"agents.claude_path: {settings.agents.claude_path} is not found")
    for name in ("redis", "postgres"):
        if not getattr(settings, name).url:
            warnings.append(f"{name}.url is empty: only `cca up` (embedded servers) will work")
    if (too_many := connection_warning(settings)) is not None:
        warnings.append(too_many)
    return warnings


def require_servers(settings: Settings) -> None:
    for name, variable in (("redis", "CCA__REDIS__URL"), ("postgres", "CCA__POSTGRES__URL")):
        if not getattr(settings, name).url:
            fail(f"{name}.url is not set and no `cca up` fleet runs from {settings.data_dir}: set "
                 f"it in cca.toml or {variable}, run `cca up` for the embedded fleet, or name "
                 "the data directory of a running one with --data-dir", 2)


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_state
@handle_errors
def db_upgrade(state: CliState, revision: str) -> None:
    """Apply the migrations (creates the vector extension and the tables)."""
    from cca_core.infra.migrate import upgrade

    require_servers(state.settings)
    upgrade(state.settings.postgres.url, revision)
    click.echo(f"database at {revision}")


@click.command()
@click.option("--queues", "-Q", help="Comma-separated queues to consume (default worker.queues).")
@click.option("--concurrency", "-c", type=click.IntRange(1, 256),
              help="Agent slots (default daemon.max_agents).")
@click.option("--name", "-n", help="Worker node name (default cca@HOST).")
@click.option("--loglevel", "-l", default=None)
@data_dir_option
@pass_state
@handle_errors
def worker(state: CliState, queues: str | None, concurrency: int | None, name: str | None,
           loglevel: str | None) -> None:
    """Run a Celery worker that runs agents, max_agents at a time."""
    from cca_core.infra.config import load_settings
    from cca_worker.app import make_celery

    overrides: dict[str, Any] = {}
    if queues:
        overrides["worker"] = {"queues": queues}
    if concurrency:
        overrides["daemon"] = {"max_agents": concurrency}
    settings = state.settings  # joins a running `cca up` fleet when no servers are configured
    if overrides:
        settings = load_settings(overrides)
    require_servers(settings)
    refuse_unsafe(settings)
    node = name or settings.worker.hostname or f"cca@{socket.gethostname()}"
    level = {"warn": "warning"}.get(settings.daemon.log_level, settings.daemon.log_level)
    make_celery(settings).worker_main([
        "--quiet", "worker", "--pool", "prefork", "--concurrency", str(settings.daemon.max_agents),
        "--queues", ",".join(settings.worker.queues), "--hostname", node,
        "--loglevel", (loglevel or level).upper(), "--task-events", "--without-mingle",
        "--without-gossip",
    ])


@click.command()
@click.option("--bind", help="HOST:PORT (default daemon.bind_address).")
@click.option("--processes", type=click.IntRange(1, 64), help="gunicorn worker processes.")
@pass_state
@handle_errors
def api(state: CliState, bind: str | None, processes: int | None) -> None:
    """Serve the HTTP API with gunicorn."""
    from cca_cli.serve import serve

    require_servers(state.settings)
    serve(state.settings, bind, processes)

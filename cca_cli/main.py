"""Entry point of ``cca``."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from cca_cli import (
    beat,
    code,
    doctor,
    flower,
    keys,
    memory,
    ops,
    roles,
    schedules,
    tasks,
    tokens,
    up,
    webhooks,
    workflows,
)
from cca_cli.context import CliState
from cca_core import __version__


@click.group()
@click.version_option(__version__, prog_name="cca")
@click.option("--api-url", envvar="CCA_API_URL", help="API base URL (default from daemon.bind_address).")
@click.option("--api-key", envvar="CCA_API_KEY", help="API key (default daemon.api_keys[0]).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="The data directory of the `cca up` fleet to join (default embedded.data_dir).")
@click.pass_context
def cli(ctx: click.Context, api_url: str | None, api_key: str | None, data_dir: Path | None) -> None:
    """cca: run Claude Code agents on a fleet. With no redis.url and postgres.url configured,
    commands join the fleet `cca up` runs from the data directory."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = CliState(api_url, api_key, data_dir)


for command in (tasks.submit, tasks.tasks, tasks.status, tasks.workers, tasks.credentials,
                ops.config, ops.db, ops.worker, ops.api, up.up, keys.keys, schedules.schedules, beat.beat,
                doctor.doctor, flower.flower, roles.roles, workflows.workflows, memory.memory,
                code.code, tokens.tokens, webhooks.webhooks):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="cca")


def ccad_main() -> None:
    """Entry point of ``ccad``: the API server as the guide's systemd unit starts it."""
    main(["api"])


if __name__ == "__main__":
    main()

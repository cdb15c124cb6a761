"""Entry point of ``cca``."""

from __future__ import annotations

import logging

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
@click.pass_context
def cli(ctx: click.Context, api_url: str | None, api_key: str | None) -> None:
    """cca: run Claude Code agents on a fleet."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = CliState(api_url, api_key)


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

"""``cca beat``: one beat process, firing the schedules stored in Postgres."""

from __future__ import annotations

import click

from cca_cli.context import CliState, data_dir_option, handle_errors, pass_state
from cca_cli.ops import require_servers


@click.command()
@click.option("--loglevel", "-l", default=None)
@data_dir_option
@pass_state
@handle_errors
def beat(state: CliState, loglevel: str | None) -> None:
    """Fire the schedules. Run several for availability: one leads, the others take over
    within seconds when it dies, and each fire still happens once."""
    from cca_worker.beat import run_beat

    require_servers(state.settings)
    run_beat(state.settings, loglevel)

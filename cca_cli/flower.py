"""``cca flower``: Flower on the fleet's broker, with basic auth from ``[flower]``."""

from __future__ import annotations

import os

import click

from cca_cli.context import CliState, data_dir_option, fail, handle_errors, pass_state
from cca_cli.ops import require_servers
from cca_core.infra.logs import configure_logging_for

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), help="Default flower.port.")
@click.option("--address", help="Default flower.address.")
@data_dir_option
@pass_state
@handle_errors
def flower(state: CliState, port: int | None, address: str | None) -> None:
    """Run Flower (queues, workers, tasks) on the fleet's broker."""
    from cca_worker.app import make_celery

    settings = state.settings
    require_servers(settings)
    address = address or settings.flower.address
    if not settings.flower.basic_auth and address not in LOOPBACK:
        fail(f"refusing to serve Flower on {address} without flower.basic_auth "
             "(set CCA__FLOWER__BASIC_AUTH=user:password)", 2)
    # Through the environment, so the credentials never show in `ps`.
    if settings.flower.basic_auth:
        os.environ["FLOWER_BASIC_AUTH"] = ",".join(settings.flower.basic_auth)
    configure_logging_for(settings)
    make_celery(settings, runs_agents=False).start([
        "--quiet", "flower", f"--port={port or settings.flower.port}", f"--address={address}",
        "--persistent=False"])

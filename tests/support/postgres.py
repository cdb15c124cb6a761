"""Postgres helpers for tests that break connections on purpose."""

from __future__ import annotations

from sqlalchemy import text

from cca_core.infra.db import make_engine


def terminate(database_url: str, pid: int) -> None:
    """End the server process ``pid`` (a backend), as a restart or a network cut would."""
    other = make_engine(database_url, pool_size=0)
    try:
        with other.connect() as connection:
            assert connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        other.dispose()

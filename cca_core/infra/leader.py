"""Leadership among processes: a Postgres advisory lock held on a dedicated connection.

The lock belongs to the connection's server session, so it is released the moment that
session ends: the holder exits or is killed (the server sees the socket close), or goes silent
for ``idle_timeout_s`` (the session's ``idle_session_timeout``; a leader queries every tick, so
only a partitioned or frozen one is cut off). Work done *on the lock's connection* commits only
while the lock is held, which is what makes it a fence and not just a hint.
"""

from __future__ import annotations

import contextlib
import logging

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from cca_core.infra.db import sqlalchemy_url

log = logging.getLogger(__name__)
# libpq notices a dead network within seconds instead of the kernel's two hours.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
              "keepalives_count": 3, "connect_timeout": 5}


class LeaderLock:
    """Try to become, and check whether one still is, the holder of one advisory lock."""

    def __init__(self, url: str, key: int, *, idle_timeout_s: int) -> None:
        self._key = key
        self._idle_timeout_s = idle_timeout_s
        self._engine: Engine | None = None
        self._url = url
        self._connection: Connection | None = None
        self.held = False

    @property
    def connection(self) -> Connection:
        """The lock's connection: run the leader's work on it. Only valid while ``held``."""
        if self._connection is None or not self.held:
            raise RuntimeError("the leader lock is not held")
        return self._connection

    def acquire(self) -> bool:
        """Take the lock if it is free (never waits). Returns whether it is held now."""
        if self.held:
            return self.confirm()
        try:
            connection = self._connect()
            with connection.begin():
                self.held = bool(connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}).scalar())
        except DBAPIError as exc:
            log.warning("cannot reach Postgres to take the leader lock: %s", exc.orig or exc)
            self._drop()
        return self.held

    def confirm(self) -> bool:
        """Whether the lock is still held: its session answers (a live session keeps it)."""
        if not self.held or self._connection is None:
            return False
        try:
            with self._connection.begin():
                self._connection.execute(text("SELECT 1"))
        except DBAPIError as exc:
            log.warning("lost the leader lock's connection: %s", exc.orig or exc)
            self._drop()
        return self.held

    def release(self) -> None:
        """Give the lock up by closing its connection: the server ends the session and the
        lock with it. Runs no query, so it is safe from a signal handler. Idempotent."""
        self._drop()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def lost(self) -> None:
        """Forget the connection after a failure on it; the server frees the lock with it."""
        self._drop()

    def _connect(self) -> Connection:
        if self._connection is not None:
            return self._connection
        if self._engine is None:
            self._engine = create_engine(sqlalchemy_url(self._url), poolclass=NullPool,
                                         connect_args=KEEPALIVES)
        connection = self._engine.connect()
        try:
            with connection.begin():
                connection.execute(text(f"SET idle_session_timeout = '{int(self._idle_timeout_s)}s'"))
        except DBAPIError:  # Postgres before 14: the keepalives still catch a dead host
            log.warning("Postgres has no idle_session_timeout; a partitioned leader keeps the "
                        "lock until TCP keepalives drop its session")
            connection.rollback()
        self._connection = connection
        return connection

    def _drop(self) -> None:
        self.held = False
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.invalidate()
                self._connection.close()
            self._connection = None

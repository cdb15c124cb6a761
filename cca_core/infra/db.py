"""Engines and sessions. Nothing connects until a factory is called."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

# A pooled connection used less than this long ago is handed out without a ping: a ping is a
# round trip on every checkout (the biggest single cost of a short claim). One idle longer is
# pinged and, if dead, replaced along with the whole pool, so a restarted Postgres costs at
# most the statements that raced the restart on busy connections: a disconnect invalidates
# the pool too.
PING_AFTER_IDLE_S = 2.0
_IDLE_SINCE = "cca_idle_since"


CONNECT_TIMEOUT_S = 5


def sqlalchemy_url(url: str) -> str:
    """Accept the guide's ``postgres://`` spelling and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 5) -> Engine:
    """Create an engine with a bounded pool; connections idle for a while are checked before
    use.

    ``pool_size=0`` keeps no connection between uses (for processes that fork children).
    """
    # A host that does not answer fails a connection in seconds, not the OS's minutes: a
    # running agent's heartbeat waits on it (cca_worker.outage).
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S}
    if pool_size == 0:
        return create_engine(sqlalchemy_url(url), poolclass=NullPool, connect_args=connect_args)
    engine = create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        connect_args=connect_args,
    )
    _ping_after_idle(engine)
    return engine


def _ping_after_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _idle_from(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise InvalidatePoolError(f"a pooled connection is dead: {exc}") from exc


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One session, committed if the block succeeds, rolled back otherwise."""
    with factory() as session, session.begin():
        yield session


@contextmanager
def autocommit(engine: Engine) -> Iterator[Connection]:
    """A connection whose statements each commit on their own, for a block of one write that
    is atomic by itself (a claim, a submission): no BEGIN and COMMIT round trips, and no
    Session, whose bookkeeping costs more CPU than such a statement."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        yield connection

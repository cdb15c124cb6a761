"""Engines and sessions. Nothing connects until a factory is called."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool


def sqlalchemy_url(url: str) -> str:
    """Accept the guide's ``postgres://`` spelling and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 5) -> Engine:
    """Create an engine with a bounded pool; connections are checked before use.

    ``pool_size=0`` keeps no connection between uses (for processes that fork children).
    """
    if pool_size == 0:
        return create_engine(sqlalchemy_url(url), poolclass=NullPool)
    return create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One session, committed if the block succeeds, rolled back otherwise."""
    with factory() as session, session.begin():
        yield session


@contextmanager
def autocommit(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One session whose statements each commit on their own: for a block of one write that
    must be atomic by itself (a conditional claim), it saves the BEGIN and COMMIT round
    trips."""
    with factory() as session:
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session

"""The connection pool on real Postgres: a connection that sat idle is pinged and replaced if
its server side is gone; one used a moment ago is trusted, and a dead one fails once and
takes the pool's other connections with it."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from cca_core.infra import db
from cca_core.infra.db import make_engine
from tests.support.postgres import terminate

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url, pool_size=2, max_overflow=0)
    yield engine
    engine.dispose()


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text("SELECT pg_backend_pid()")))


def test_an_idle_connection_whose_backend_died_is_replaced_before_use(
    engine, database_url, monkeypatch,
):
    dead = backend_pid(engine)
    terminate(database_url, dead)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)  # as if it had sat idle long enough

    assert backend_pid(engine) != dead


def test_a_connection_used_a_moment_ago_is_not_pinged_and_a_dead_one_fails_once(
    engine, database_url,
):
    dead = backend_pid(engine)
    terminate(database_url, dead)

    with pytest.raises(OperationalError) as failed:
        backend_pid(engine)  # no ping: the statement itself meets the closed connection
    assert failed.value.connection_invalidated
    assert backend_pid(engine) != dead

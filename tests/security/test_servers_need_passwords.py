"""The embedded Redis and Postgres of `cca up` (and of the tests) ask every client for a
password: another local user, or an agent with a shell, cannot use them without it."""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg
import pytest
import redis

pytestmark = pytest.mark.attack


def test_redis_refuses_a_client_without_the_password(redis_url):
    where = urlsplit(redis_url)
    assert where.password  # the URL cca hands its processes carries it
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=where.hostname, port=where.port).ping()


def test_postgres_refuses_a_client_without_the_password(pg_server):
    without = pg_server.url.replace(f":{pg_server.password}@", ":@")
    assert without != pg_server.url
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(without, connect_timeout=5).close()
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(without.replace(":@", ":guessed@"), connect_timeout=5).close()


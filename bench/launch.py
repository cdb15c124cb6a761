"""Start the processes under test, wait until they serve, stop them afterwards:
cca's API (gunicorn), a cca worker, and the baseline's bare Celery worker."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from celery import Celery

from bench.bare import OPTIONS, QUEUE, RECORD_START, make_bare_celery
from bench.config import REPO, child_env
from bench.processes import Child
from bench.servers import Bench
from bench.waiting import BenchError, wait_until
from cca_core.infra.embedded import free_port
from cca_core.names import worker_key

START_TIMEOUT_S = 60.0
# The flags `cca worker` passes to Celery (cca_cli/ops.py), so both workers run alike.
WORKER_FLAGS = ["--pool", "prefork", "--loglevel", "INFO", "--task-events",
                "--without-mingle", "--without-gossip"]


@contextmanager
def api_server(bench: Bench, processes: int = 2, name: str = "api") -> Iterator[str]:
    """Run ``cca api`` (gunicorn, sync workers) on a free port; yield its base URL. Its
    process is ``bench.children.named(name)``."""
    config = bench.write_config(name, max_agents=2)
    bind = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "cca_cli.main", "api", "--bind", bind,
            "--processes", str(processes)]
    child = bench.children.start(name, argv, child_env(CCA_CONFIG=str(config)), bench.root)
    url = f"http://{bind}"
    try:
        wait_until(lambda: _answers(url), timeout_s=START_TIMEOUT_S, what="the API", child=child,
                   interval_s=0.1)
        yield url
    finally:
        child.stop()


@contextmanager
def cca_worker(bench: Bench, name: str, max_agents: int, standin: Path | None = None,
               agent_env: dict[str, str] | None = None,
               sections: dict[str, dict[str, Any]] | None = None) -> Iterator[Child]:
    """Run ``cca worker`` with ``max_agents`` slots (and ``standin`` as claude, by default the
    instant one, with ``agent_env`` in its environment, and ``sections`` in its config); yield
    it once it announced itself in Redis."""
    config = bench.write_config(name, max_agents=max_agents, standin=standin,
                                agent_env=agent_env, sections=sections)
    node = f"{name}@bench"
    argv = [sys.executable, "-m", "cca_cli.main", "worker", "--name", node]
    child = bench.children.start(name, argv, child_env(CCA_CONFIG=str(config)), bench.root)
    try:
        wait_until(lambda: bench.redis.exists(worker_key(node)), timeout_s=START_TIMEOUT_S,
                   what=f"worker {node}", child=child, interval_s=0.05)
        yield child
    finally:
        child.stop()


@contextmanager
def bare_worker(bench: Bench, name: str, concurrency: int,
                standin: Path | None = None) -> Iterator[Celery]:
    """Run the baseline's Celery worker (prefork, ``concurrency`` processes, running
    ``standin``); yield a producer app for it once it ran a first task."""
    standin = standin or bench.standin
    env = child_env(BENCH_REDIS_URL=bench.redis_url, BENCH_WORKSPACE=str(bench.bare_workspace),
                    BENCH_STANDIN=str(standin))
    argv = [sys.executable, "-m", "celery", "-A", "bench.bare_worker", "worker", *WORKER_FLAGS,
            "--concurrency", str(concurrency), "--queues", QUEUE, "--hostname", f"{name}@bench"]
    child = bench.children.start(name, argv, env, REPO)
    app = make_bare_celery(bench.redis_url, bench.bare_workspace, standin)
    try:
        key = f"bench:ready:{uuid.uuid4().hex}"
        app.send_task(RECORD_START, args=[key], **OPTIONS)
        wait_until(lambda: bench.redis.llen(key), timeout_s=START_TIMEOUT_S,
                   what=f"worker {name}@bench", child=child, interval_s=0.05)
        yield app
    finally:
        app.close()
        child.stop()


def _answers(url: str) -> bool:
    try:
        response = httpx.get(f"{url}/health", timeout=2)
    except httpx.HTTPError:
        return False
    if response.status_code >= 500:
        raise BenchError(f"the API answers /health with {response.status_code}: {response.text}")
    return True

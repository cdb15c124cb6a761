"""The baseline: a bare Celery app with cca's Celery settings (``celery_config``) and two
tasks that do only what is measured, on their own queue so no cca worker takes them."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

import redis
from celery import Celery

from cca_core.tasks.dispatch import celery_config, message_options

QUEUE = "bench"
RECORD_START = "bench.record_start"
RUN_STANDIN = "bench.run_standin"
DONE_KEY = "bench:done"
OPTIONS = message_options(QUEUE, "normal", None)

_clients: dict[int, redis.Redis] = {}


def make_bare_celery(redis_url: str, workspace: Path, standin: Path) -> Celery:
    """Create the baseline app; ``workspace`` and ``standin`` are used by RUN_STANDIN."""
    app = Celery("bench-bare")
    app.conf.update(celery_config(redis_url, 3600))

    @app.task(name=RECORD_START, shared=False)
    def record_start(key: str) -> None:
        """Push this task's start time to the list ``key``."""
        started = time.time()
        _client(redis_url).rpush(key, repr(started))

    @app.task(name=RUN_STANDIN, shared=False)
    def run_standin(task_id: str) -> None:
        """Run the stand-in in a fresh directory to the end; push its :class:`Span` to DONE_KEY."""
        started = time.time()
        workdir = workspace / task_id
        workdir.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(standin)], cwd=workdir, stdin=subprocess.DEVNULL,
                       capture_output=True, check=False)
        _client(redis_url).rpush(DONE_KEY, f"{started!r} {time.time()!r} {os.getpid()}")

    return app


class Span(NamedTuple):
    """One run of RUN_STANDIN: when it started and ended, and the pool process that ran it."""

    start: float
    end: float
    pid: int


def done_spans(client: redis.Redis) -> list[Span]:
    """The spans RUN_STANDIN pushed to DONE_KEY, oldest first."""
    spans = []
    for raw in client.lrange(DONE_KEY, 0, -1):
        start, end, pid = raw.split()
        spans.append(Span(float(start), float(end), int(pid)))
    return spans


def _client(url: str) -> redis.Redis:
    """One Redis client per pool process, made after the fork."""
    pid = os.getpid()
    if pid not in _clients:
        _clients.clear()
        _clients[pid] = redis.Redis.from_url(url)
    return _clients[pid]

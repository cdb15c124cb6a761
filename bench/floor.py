"""The least CPU cca's records can add to a task on this machine: the writes every task
needs (its INSERT, the claim, the finish with the run's events, the events' XADD), made
back to back in this process with cca's own statements on one connection and nothing else,
counting this process, Postgres and Redis. Added to the baseline's CPU per task, it bounds
the ratio (c) can reach with a stand-in that answers at once (where both sides are CPU-bound),
whatever the rest of cca costs."""

from __future__ import annotations

import os
from typing import Any

import redis
from sqlalchemy import Engine

from bench.cpu import cpu_spent
from bench.servers import Bench
from bench.standin import EVENTS
from cca_core.infra.db import autocommit, make_engine
from cca_core.settings import RedisSettings
from cca_core.tasks import store
from cca_core.tasks.outcome import Outcome
from cca_worker.events import EventSink

WARMUP = 50
OUTCOME = Outcome(status="succeeded", result="ok", num_turns=1, session_id="s",
                  input_tokens=1, output_tokens=1)


def writes_cpu_ms(bench: Bench, values: dict[str, Any], n: int) -> float:
    """CPU milliseconds per task of ``n`` tasks' writes (after a warm-up)."""
    engine = make_engine(bench.postgres_url, pool_size=1, max_overflow=0)
    client = redis.Redis.from_url(bench.redis_url)
    stream = bench.settings().redis
    try:
        for _ in range(WARMUP):
            _write(engine, client, stream, values)
        with cpu_spent(bench.cpu_roots) as cpu:
            for _ in range(n):
                _write(engine, client, stream, values)
    finally:
        client.close()
        engine.dispose()
    return cpu.seconds * 1000 / n


def _write(engine: Engine, client: redis.Redis, stream: RedisSettings,
           values: dict[str, Any]) -> None:
    with autocommit(engine) as connection:
        task, _ = store.create_task(connection, values)
        task_id = str(task.id)
        store.claim_task(connection, task_id, worker="floor@bench", pid=os.getpid(), lease_s=60,
                         max_attempts=1)
        store.finish_task(connection, task_id, 1, OUTCOME, EVENTS)
    EventSink(engine, client, task_id, 1, ttl_s=stream.context_ttl_seconds,
              max_events=stream.stream_max_events).publish(EVENTS)

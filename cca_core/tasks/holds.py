"""Runs held in Redis while Postgres cannot record them.

A run whose heartbeat cannot reach Postgres, or whose finish waits in its worker's spool
(``cca_worker.spool``), cannot renew its lease: once the lease lapses, the sweep would re-send
its task and another worker would run it again, or end it ``worker_lost``. A hold says "this
run is alive (or finished) on worker W; leave its task alone until T". Claims and the sweep
honour it; it lapses by itself at T, so a hold whose worker is gone for good does not keep its
task forever.

Best effort: when Redis is down too, nothing is held (the run is then as safe as its lease).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Set

import redis

from cca_core.names import HELD_TASKS_KEY

log = logging.getLogger(__name__)


def hold(client: redis.Redis, task_id: str, attempt: int, worker: str, seconds: float) -> None:
    """Hold ``task_id`` for its run ``attempt`` on ``worker`` for ``seconds`` from now."""
    until = time.time() + seconds
    try:
        client.hset(HELD_TASKS_KEY, task_id,
                    json.dumps({"worker": worker, "attempt": attempt, "until": until}))
    except redis.RedisError as exc:
        log.warning("cannot hold task %s in Redis: %s", task_id, exc)


def release(client: redis.Redis, task_id: str) -> None:
    try:
        client.hdel(HELD_TASKS_KEY, task_id)
    except redis.RedisError as exc:
        log.warning("cannot release the hold on task %s: %s (it lapses by itself)", task_id, exc)


def held(client: redis.Redis) -> Set[str]:
    """The tasks held now. Lapsed holds are removed on the way."""
    try:
        entries = client.hgetall(HELD_TASKS_KEY)
    except redis.RedisError as exc:
        log.warning("cannot read held tasks from Redis: %s", exc)
        return frozenset()
    now = time.time()
    by_task = {_text(task_id): value for task_id, value in entries.items()}
    lapsed = [task_id for task_id, value in by_task.items() if _until(value) <= now]
    if lapsed:
        with contextlib.suppress(redis.RedisError):
            client.hdel(HELD_TASKS_KEY, *lapsed)
    return frozenset(task_id for task_id, value in by_task.items() if _until(value) > now)


def is_held(client: redis.Redis, task_id: str) -> bool:
    try:
        value = client.hget(HELD_TASKS_KEY, task_id)
    except redis.RedisError:
        return False
    return value is not None and _until(value) > time.time()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _until(value: bytes | str) -> float:
    try:
        return float(json.loads(value)["until"])
    except (ValueError, KeyError, TypeError):
        return 0.0

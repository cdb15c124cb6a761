"""Read the fleet's state: workers announced in Redis, queue depths, task counts.

A worker announces itself in two places: its own key (``cca:worker:<hostname>``, its details,
expiring) and the ``cca:workers`` sorted set (hostname scored by when the announcement
expires). Reading the fleet then never scans the key space: counting the live workers is one
ZCOUNT, listing them one ZRANGEBYSCORE and one MGET (each after a TIME: scores are Redis's
clock).
"""

from __future__ import annotations

import json
from typing import Any

import redis
from sqlalchemy.orm import Session

from cca_core.names import WORKERS_INDEX_KEY, queue_keys, worker_key
from cca_core.tasks import store

# Index entries of workers gone this long are dropped by the next announcement of any worker.
FORGET_AFTER_S = 3600


def server_time(client: redis.Redis) -> float:
    """Redis's clock: every host compares announcements with the same one, whatever the skew
    between their own clocks."""
    seconds, micros = client.time()  # type: ignore[misc]
    return float(seconds) + micros / 1e6


def announce(client: redis.Redis, info: dict[str, Any], ttl_s: int) -> None:
    """Publish ``info`` (with its ``hostname``) as a live worker for ``ttl_s`` seconds."""
    now = server_time(client)
    pipe = client.pipeline(transaction=True)
    pipe.set(worker_key(info["hostname"]), json.dumps(info), ex=ttl_s)
    pipe.zadd(WORKERS_INDEX_KEY, {info["hostname"]: now + ttl_s})
    pipe.zremrangebyscore(WORKERS_INDEX_KEY, "-inf", now - FORGET_AFTER_S)
    pipe.execute()


def withdraw(client: redis.Redis, hostname: str) -> None:
    """Remove a stopping worker's announcement."""
    pipe = client.pipeline(transaction=True)
    pipe.delete(worker_key(hostname))
    pipe.zrem(WORKERS_INDEX_KEY, hostname)
    pipe.execute()


def count_online(client: redis.Redis) -> int:
    """How many workers announced themselves and have not expired (TIME and ZCOUNT)."""
    return int(client.zcount(WORKERS_INDEX_KEY, server_time(client), "+inf"))


def online_workers(client: redis.Redis) -> list[dict[str, Any]]:
    """Workers whose announcement has not expired, sorted by hostname."""
    now = server_time(client)
    names: list[bytes] = client.zrangebyscore(WORKERS_INDEX_KEY, now, "+inf")  # type: ignore[assignment]
    values = client.mget([worker_key(name.decode()) for name in names]) if names else []
    workers = [json.loads(value) for value in values if value]
    return sorted(workers, key=lambda worker: worker["hostname"])


def workers_with_slots(client: redis.Redis, session: Session) -> list[dict[str, Any]]:
    """Online workers with busy slots counted from the running tasks they own."""
    busy = store.running_by_worker(session.connection())
    return [{**worker, "slots_busy": busy.get(worker["hostname"], 0)} for worker in online_workers(client)]


def queue_depths(client: redis.Redis, queues: set[str]) -> dict[str, int]:
    """Messages waiting per queue, over every priority list of the queue."""
    pipe = client.pipeline(transaction=False)
    names = sorted(queues)
    for queue in names:
        for key in queue_keys(queue):
            pipe.llen(key)
    lengths = pipe.execute()
    steps = len(queue_keys(""))
    return {queue: sum(lengths[i * steps:(i + 1) * steps]) for i, queue in enumerate(names)}

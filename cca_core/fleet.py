"""Read the fleet's state: workers announced in Redis, queue depths, task counts."""

from __future__ import annotations

import json
from typing import Any

import redis
from sqlalchemy.orm import Session

from cca_core import store
from cca_core.names import WORKER_KEY_PATTERN, queue_keys


def online_workers(client: redis.Redis) -> list[dict[str, Any]]:
    """Workers whose announcement has not expired, sorted by hostname."""
    keys = list(client.scan_iter(match=WORKER_KEY_PATTERN, count=500))
    values = client.mget(keys) if keys else []
    workers = [json.loads(value) for value in values if value]
    return sorted(workers, key=lambda worker: worker["hostname"])


def workers_with_slots(client: redis.Redis, session: Session) -> list[dict[str, Any]]:
    """Online workers with busy slots counted from the running tasks they own."""
    busy = store.running_by_worker(session)
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

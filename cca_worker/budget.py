"""The per-worker rolling token budget, counted in Redis buckets shared by the pool."""

from __future__ import annotations

import time

import redis

from cca_core.names import budget_key

BUCKETS_PER_WINDOW = 60


def bucket_seconds(window_s: int) -> int:
    return max(1, window_s // BUCKETS_PER_WINDOW)


def add(client: redis.Redis, hostname: str, tokens: int, window_s: int) -> None:
    """Add tokens to the current bucket. Raises RedisError."""
    if tokens <= 0:
        return
    size = bucket_seconds(window_s)
    key = budget_key(hostname, int(time.time()) // size)
    pipe = client.pipeline(transaction=False)
    pipe.incrby(key, tokens)
    pipe.expire(key, window_s + size)
    pipe.execute()


def used_in_window(client: redis.Redis, hostname: str, window_s: int) -> int:
    """Tokens this worker spent in the last ``window_s`` seconds."""
    size = bucket_seconds(window_s)
    current = int(time.time()) // size
    keys = [budget_key(hostname, bucket) for bucket in range(current - window_s // size, current + 1)]
    return sum(int(value) for value in client.mget(keys) if value is not None)


def is_spent(client: redis.Redis, hostname: str, limit: int, window_s: int) -> bool:
    """Whether this worker spent ``limit`` tokens or more in its window (0: no limit)."""
    return bool(limit) and used_in_window(client, hostname, window_s) >= limit

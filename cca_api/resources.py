"""The connections one API process holds: a Postgres pool, a Redis client, a Celery producer,
and for live followers a status hub and a Redis client of their own."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from redis import Redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cca_api.auth import KeyResolver
from cca_api.hub import StatusHub
from cca_core.infra.connections import api_pool
from cca_core.infra.db import make_engine, make_session_factory
from cca_core.infra.reload import Watcher
from cca_core.settings import Settings
from cca_core.tasks.dispatch import celery_config
from cca_core.tasks.history import Estimates


@dataclass
class Resources:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: redis.Redis
    celery: Celery
    keys: KeyResolver
    estimates: Estimates
    hub: StatusHub
    # Followers block on reads of their task's stream: a pool of their own (one connection
    # each), so they never take the connections other requests need.
    followers_redis: Redis
    # Reloads the configuration when asked (cca_core.infra.reload); None for an app built
    # from given settings (tests), which has no files to read again.
    watcher: Watcher | None = None


def make_resources(settings: Settings) -> Resources:
    """Create the clients; nothing connects until first use."""
    pool_size, max_overflow = api_pool(settings)
    engine = make_engine(settings.postgres.url, pool_size=pool_size, max_overflow=max_overflow)
    producer = Celery("cca-api")
    producer.conf.update(celery_config(settings.redis.url, 3600))
    sessions = make_session_factory(engine)
    return Resources(
        settings=settings,
        engine=engine,
        sessions=sessions,
        keys=KeyResolver(settings.daemon.api_keys, sessions, settings.daemon.task_token_secret),
        redis=redis.Redis.from_url(settings.redis.url, socket_timeout=5, socket_connect_timeout=3,
                                   max_connections=settings.redis.pool_size),
        celery=producer,
        estimates=Estimates(engine),
        hub=StatusHub(settings.postgres.url, follower_capacity(settings)),
        followers_redis=redis.Redis.from_url(settings.redis.url, socket_timeout=5,
                                             socket_connect_timeout=3,
                                             max_connections=follower_capacity(settings)),
    )


RESERVED_THREADS = 8  # of each API process's threads, never taken by followers


def follower_capacity(settings: Settings) -> int:
    """How many live streams one API process follows at once."""
    return settings.daemon.api_threads - RESERVED_THREADS

"""Retention: delete task events older than ``retention.task_events_days`` from Postgres and
Redis event streams idle longer than ``retention.stream_seconds``.

Run by the sweep, which one worker of the fleet holds at a time (``cca_worker.housekeeping``). Each run
does bounded work (at most ``MAX_BATCHES`` deletes of ``batch_size`` rows, one SCAN step of
``batch_size`` keys) and adds what it deleted to fleet-wide counters that ``/metrics`` reports
as ``cca_retention_deleted_total{kind}``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from sqlalchemy.orm import Session, sessionmaker

from cca_core.infra.db import transaction
from cca_core.names import EVENTS_STREAM_PATTERN, RETENTION_SCAN_KEY, retention_counter_key
from cca_core.settings import RetentionSettings
from cca_core.tasks import store

MAX_BATCHES = 10


@dataclass(frozen=True)
class RetentionReport:
    task_events: int
    streams: int


def enforce_retention(
    sessions: sessionmaker[Session], client: redis.Redis, policy: RetentionSettings,
) -> RetentionReport:
    """Delete what is past retention (one bounded step); count it in Redis."""
    report = RetentionReport(task_events=_delete_events(sessions, policy),
                             streams=_delete_streams(client, policy))
    pipe = client.pipeline(transaction=False)
    for kind, count in (("task_events", report.task_events), ("streams", report.streams)):
        if count:
            pipe.incrby(retention_counter_key(kind), count)
    pipe.execute()
    return report


def _delete_events(sessions: sessionmaker[Session], policy: RetentionSettings) -> int:
    if not policy.task_events_days:
        return 0
    cutoff = datetime.now(UTC) - timedelta(days=policy.task_events_days)
    deleted = 0
    for _ in range(MAX_BATCHES):
        # One transaction per batch: row locks are held briefly, and what is done stays done.
        with transaction(sessions) as session:
            count = store.delete_events_before(session.connection(), cutoff, policy.batch_size)
        deleted += count
        if count < policy.batch_size:
            break
    return deleted


def _delete_streams(client: redis.Redis, policy: RetentionSettings) -> int:
    """One SCAN step over the event streams (resuming where the last run stopped); delete those
    whose newest entry (or whose absence of entries) is older than the cutoff."""
    if not policy.stream_seconds:
        return 0
    cursor = int(client.get(RETENTION_SCAN_KEY) or 0)
    cursor, keys = client.scan(cursor, match=EVENTS_STREAM_PATTERN, count=policy.batch_size,
                               _type="stream")
    cutoff_ms = int((time.time() - policy.stream_seconds) * 1000)
    stale: list[bytes | str] = []
    if keys:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.xrevrange(key, count=1)
        for key, newest in zip(keys, pipe.execute(), strict=True):
            if not newest or _entry_ms(newest[0][0]) < cutoff_ms:
                stale.append(key)
    deleted = int(client.delete(*stale)) if stale else 0
    client.set(RETENTION_SCAN_KEY, cursor)
    return deleted


def _entry_ms(entry_id: bytes) -> int:
    """When a stream entry was added: its id is ``<milliseconds>-<sequence>``."""
    return int(entry_id.split(b"-", 1)[0])

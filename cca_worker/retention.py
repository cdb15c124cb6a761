"""Retention: delete task events older than ``retention.task_events_days``, stored sessions
not updated for ``retention.sessions_days``, webhook deliveries older than
``webhooks.keep_days`` and fleet samples older than ``dashboard.keep_days`` from Postgres,
and Redis event streams idle longer than ``retention.stream_seconds``.

Run by the sweep, which one worker of the fleet holds at a time (``cca_worker.housekeeping``). Each run
does bounded work (at most ``MAX_BATCHES`` deletes of ``batch_size`` rows, one SCAN step of
``batch_size`` keys) and adds what it deleted to fleet-wide counters that ``/metrics`` reports
as ``cca_retention_deleted_total{kind}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from cca_core.fleet import trends
from cca_core.infra.db import transaction
from cca_core.names import EVENTS_STREAM_PATTERN, RETENTION_SCAN_KEY, retention_counter_key
from cca_core.sessions import store as stored_sessions
from cca_core.settings import RetentionSettings
from cca_core.tasks import store
from cca_core.tasks.live import entry_time
from cca_core.webhooks import store as webhooks

MAX_BATCHES = 10


@dataclass(frozen=True)
class RetentionReport:
    task_events: int
    sessions: int
    streams: int
    deliveries: int
    samples: int


def enforce_retention(
    sessions: sessionmaker[Session], client: redis.Redis, policy: RetentionSettings,
    webhook_days: int, sample_days: int,
) -> RetentionReport:
    """Delete what is past retention (one bounded step); count it in Redis."""
    report = RetentionReport(
        task_events=_in_batches(sessions, policy.task_events_days, policy.batch_size,
                                store.delete_events_before),
        sessions=_in_batches(sessions, policy.sessions_days, policy.batch_size,
                             stored_sessions.delete_before),
        streams=_delete_streams(client, policy),
        deliveries=_in_batches(sessions, webhook_days, policy.batch_size, webhooks.delete_before),
        samples=_in_batches(sessions, sample_days, policy.batch_size, trends.delete_samples_before))
    pipe = client.pipeline(transaction=False)
    for kind, count in (("task_events", report.task_events), ("sessions", report.sessions),
                        ("streams", report.streams), ("webhook_deliveries", report.deliveries),
                        ("fleet_samples", report.samples)):
        if count:
            pipe.incrby(retention_counter_key(kind), count)
    pipe.execute()
    return report


def _in_batches(sessions: sessionmaker[Session], days: int, batch: int,
                delete_before: Callable[[Connection, datetime, int], int]) -> int:
    """Delete what ``delete_before`` finds older than ``days`` (0: keep all), a batch at a time."""
    if not days:
        return 0
    cutoff = datetime.now(UTC) - timedelta(days=days)
    deleted = 0
    for _ in range(MAX_BATCHES):
        # One transaction per batch: row locks are held briefly, and what is done stays done.
        with transaction(sessions) as session:
            count = delete_before(session.connection(), cutoff, batch)
        deleted += count
        if count < batch:
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
            if not newest or _entry_ms(*newest[0]) < cutoff_ms:
                stale.append(key)
    deleted = int(client.delete(*stale)) if stale else 0
    client.set(RETENTION_SCAN_KEY, cursor)
    return deleted


def _entry_ms(entry_id: bytes, fields: dict[bytes, bytes]) -> int:
    """When a stream entry was added: its event's ``at`` (an entry's id is its event's table
    id, cca_core.tasks.live); for an entry without one, its id's ``<milliseconds>-<seq>``."""
    if b"at" in fields:
        return int(entry_time(fields).timestamp() * 1000)
    return int(entry_id.split(b"-", 1)[0])

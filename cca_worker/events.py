"""Where a run's events go: Postgres (the record) and a Redis stream (for live followers).

Every event is redacted as it arrives (``cca_core.infra.redact``): an agent that prints its model API
key or its bridge token leaves neither in the record nor in the stream."""

from __future__ import annotations

import logging
from typing import Any

import redis
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from cca_core.infra.db import autocommit
from cca_core.infra.redact import Redactor
from cca_core.names import events_stream_key
from cca_core.tasks import store
from cca_core.tasks.live import stream_entry
from cca_worker.outage import Outage

log = logging.getLogger(__name__)


class EventSink:
    """Buffers events and writes them in batches; ``flush`` is called by the supervisor.

    While Postgres is unreachable (``outage``), events stay buffered, up to ``max_buffered``;
    what comes after that is counted, and a ``gap`` event recording how many were lost takes
    their place once the buffer is written."""

    def __init__(
        self, engine: Engine, redis_client: redis.Redis, task_id: str,
        attempt: int, *, ttl_s: int, max_events: int, redactor: Redactor | None = None,
        outage: Outage | None = None, max_buffered: int = 10000,
    ) -> None:
        self._engine = engine
        self._redis = redis_client
        self._task_id = task_id
        self._attempt = attempt
        self._ttl_s = ttl_s
        self._max_events = max_events
        self._redactor = redactor or Redactor()
        self._outage = outage
        self._max_buffered = max_buffered
        self._pending: list[dict[str, Any]] = []
        self._lost = 0  # events dropped since the buffer filled up
        self._last_id = 0  # of the last event this sink recorded

    def add(self, event: dict[str, Any]) -> None:
        if len(self._pending) >= self._max_buffered:
            self._lost += 1
            return
        self._pending.append(self._redactor.value(event))

    def flush(self) -> None:
        """Write what is buffered (one statement), then publish it under the ids it got.
        With an ``outage``, the events stay buffered while Postgres is unreachable; without
        one, Postgres errors propagate. Redis is best effort."""
        if self._pending and self._outage is not None:
            self._outage.call(self._write, None)
        elif self._pending:
            self._write()

    def _write(self) -> None:
        batch = self._with_gap(self._pending)
        with autocommit(self._engine) as connection:
            recorded = store.append_events(connection, self._task_id, self._attempt, batch)
        if self._lost:
            log.warning("task %s: %s events were lost while Postgres was unreachable",
                        self._task_id, self._lost)
        self._pending, self._lost = [], 0
        self._publish(batch, recorded)

    def take(self) -> list[dict[str, Any]]:
        """What is buffered, no longer buffered: the run's last events, which its finishing
        write records; :meth:`publish_recorded` them once committed."""
        batch, self._pending, self._lost = self._with_gap(self._pending), [], 0
        return batch

    def _with_gap(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The batch, closed by a gap event when events were dropped after it."""
        if not self._lost:
            return batch
        return [*batch, {"type": "cca", "subtype": "gap", "lost": self._lost,
                         "message": f"{self._lost} events were lost while Postgres was unreachable "
                                    f"(the buffer holds {self._max_buffered})"}]

    def publish_recorded(self, batch: list[dict[str, Any]]) -> None:
        """Publish the last events another statement recorded, under the ids they got (best
        effort: a follower reads them from the table when the status changes anyway)."""
        if not batch:
            return
        try:
            with autocommit(self._engine) as connection:
                recorded = store.recorded_events(connection, self._task_id, self._attempt,
                                                 self._last_id, len(batch))
        except SQLAlchemyError as exc:
            log.warning("could not read back the last events of task %s: %s", self._task_id, exc)
            return
        if len(recorded) == len(batch):
            self._publish(batch, recorded)

    def _publish(self, batch: list[dict[str, Any]], recorded: list[tuple[Any, Any]]) -> None:
        """Append committed events to the task's Redis stream under their table ids."""
        self._last_id = recorded[-1][0]
        key = events_stream_key(self._task_id)
        try:
            # MULTI: the entries and the stream's expiry are written together. An entry older
            # than the stream's last (a run that lost its task publishing late) is refused.
            pipe = self._redis.pipeline(transaction=True)
            for event, (event_id, created_at) in zip(batch, recorded, strict=True):
                entry_id, fields = stream_entry(event_id, self._attempt, created_at, event)
                pipe.xadd(key, fields, id=entry_id, maxlen=self._max_events, approximate=True)
            pipe.expire(key, self._ttl_s)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not publish events of task %s to Redis: %s", self._task_id, exc)

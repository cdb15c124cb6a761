"""Which worker process took each task message, until its task is claimed.

A worker's main process takes a message from Redis, then hands it to a pool process, which
claims the task in Postgres. If the worker dies in between, the message stays unacknowledged
in Redis until its visibility timeout (an hour) and the task stays queued: only the sweep's
re-send after ``worker.resend_after_seconds`` would run it. So the main process records each
message it takes (the task, the worker's name and this incarnation of it: a worker restarted
under the same name is another incarnation) and announces its incarnation; the sweep re-sends
at its next turn a queued task whose message was taken by an incarnation no longer announced.

Best effort: a record Redis cannot take leaves its task to the re-send after
``worker.resend_after_seconds``, as before.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import redis

from cca_core.names import DELIVERIES_KEY

log = logging.getLogger(__name__)

# Removes each given field whose value is still the one read (a newer record of it stays).
_FORGET = """
local removed = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    removed = removed + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return removed
"""


@dataclass(frozen=True)
class Delivery:
    task_id: str
    worker: str
    incarnation: str
    stored: bytes  # the record as read: forgotten only while unchanged


def record(client: redis.Redis, task_id: str, worker: str, incarnation: str) -> None:
    """``worker`` (its ``incarnation``) took the message of ``task_id``."""
    try:
        client.hset(DELIVERIES_KEY, task_id, json.dumps({"worker": worker, "incarnation": incarnation}))
    except redis.RedisError as exc:
        log.warning("cannot record the delivery of task %s: %s", task_id, exc)


def read(client: redis.Redis) -> list[Delivery]:
    """Every record; one that does not parse (not a task id, not a record) is dropped."""
    deliveries, unreadable = [], []
    entries: dict[bytes, bytes] = client.hgetall(DELIVERIES_KEY)  # type: ignore[assignment]
    for field, value in entries.items():
        try:
            task_id, entry = field.decode(), json.loads(value)
            uuid.UUID(task_id)
            deliveries.append(Delivery(task_id, str(entry["worker"]), str(entry["incarnation"]), value))
        except (ValueError, KeyError, TypeError):
            unreadable.append(field)
    if unreadable:
        client.hdel(DELIVERIES_KEY, *unreadable)
    return deliveries


def taken_by_the_gone(deliveries: Collection[Delivery], live: Mapping[str, str | None]) -> set[str]:
    """The tasks whose message was taken by an incarnation ``live`` (announced workers'
    names to their incarnations) does not list."""
    return {delivery.task_id for delivery in deliveries if live.get(delivery.worker) != delivery.incarnation}


def forget(client: redis.Redis, deliveries: Collection[Delivery]) -> None:
    """Drop these records, except those recorded again since they were read."""
    if not deliveries:
        return
    args = [part for delivery in deliveries for part in (delivery.task_id, delivery.stored)]
    client.eval(_FORGET, 1, DELIVERIES_KEY, *args)

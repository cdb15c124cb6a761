"""Status notices for live followers: one LISTEN connection per API process.

Postgres announces every change of a task's or workflow's status on the ``cca_status``
channel (migration 0017), whoever made it. The hub's thread listens, started by the first
follower, and hands each notice to the followers it concerns; a follower waits on its own
queue and holds no Postgres connection. With no follower for a while, the hub closes its
connection too (the next follower starts it again). After the listening connection is lost and made
again, every follower is told to ``resync`` (read the table), since notices sent meanwhile
are gone. A follower that falls far behind loses notices, and is told how many."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from cca_core.infra.db import sqlalchemy_url

log = logging.getLogger(__name__)

CHANNEL = "cca_status"
RESYNC: dict[str, Any] = {"kind": "resync"}
QUEUE_LIMIT = 10_000  # notices a follower may have unread
RECONNECT_S = 1.0
READY_WAIT_S = 5.0  # how long a new follower waits for the hub to listen
IDLE_S = 30.0  # with no follower this long, the hub closes its connection (and starts again)


class Busy(Exception):
    """This API process follows as many streams as it may; another one (or later) can."""


class Subscription:
    """What one follower receives: the notices its filter accepts, in order."""

    def __init__(self, wants: Callable[[dict[str, Any]], bool]) -> None:
        self.wants = wants
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(QUEUE_LIMIT)
        self.lost = 0  # notices dropped because the queue was full

    def offer(self, notice: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(notice)
        except queue.Full:
            self.lost += 1

    def get(self, timeout: float) -> dict[str, Any] | None:
        """The next notice, or None after ``timeout`` seconds without one."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self) -> list[dict[str, Any]]:
        notices = []
        while True:
            try:
                notices.append(self._queue.get_nowait())
            except queue.Empty:
                return notices


class StatusHub:
    """Listens on ``cca_status`` for this process's followers, at most ``capacity`` of them."""

    def __init__(self, database_url: str, capacity: int, idle_s: float = IDLE_S) -> None:
        self._url = make_url(sqlalchemy_url(database_url)).set(drivername="postgresql") \
            .render_as_string(hide_password=False)
        self._subscriptions: set[Subscription] = set()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(capacity)
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None
        self._idle_s = idle_s

    def subscribe(self, wants: Callable[[dict[str, Any]], bool]) -> Subscription:
        """A new follower's subscription; raises :class:`Busy` when every slot is taken.
        Returns once the hub listens (or after a short wait when Postgres is unreachable:
        the follower then resyncs when the hub gets through)."""
        if not self._slots.acquire(blocking=False):
            raise Busy("this API process follows as many streams as it may")
        subscription = Subscription(wants)
        with self._lock:
            self._subscriptions.add(subscription)
            if self._thread is None:
                self._thread = threading.Thread(target=self._listen, name="status-hub", daemon=True)
                self._thread.start()
        self._listening.wait(READY_WAIT_S)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.discard(subscription)
                self._slots.release()

    def followers(self) -> int:
        with self._lock:
            return len(self._subscriptions)

    def _listen(self) -> None:
        idle_since = time.monotonic()
        while not self._done(idle_since):
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=3) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    self._dispatch(RESYNC)
                    while not self._done(idle_since):
                        for notify in connection.notifies(timeout=self._idle_s / 3):
                            self._dispatch(json.loads(notify.payload))
                        if self.followers():
                            idle_since = time.monotonic()
            except psycopg.Error as exc:
                self._listening.clear()
                log.warning("status notices: %s; listening again in %.0f s", exc, RECONNECT_S)
                time.sleep(RECONNECT_S)

    def _done(self, idle_since: float) -> bool:
        """Whether the hub may stop: no follower for its idle time (decided under the lock,
        so a follower that subscribes meanwhile starts a new listener)."""
        with self._lock:
            if self._subscriptions or time.monotonic() - idle_since < self._idle_s:
                return False
            self._thread = None
            self._listening.clear()
            return True

    def _dispatch(self, notice: dict[str, Any]) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            if notice is RESYNC or subscription.wants(notice):
                subscription.offer(notice)

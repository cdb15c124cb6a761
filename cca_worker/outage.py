"""Postgres blips under a running agent: its writes are retried with backoff for up to
``worker.postgres_outage_seconds`` before the agent is stopped, and its task is held in Redis
meanwhile (``cca_core.tasks.holds``), so a lapsed lease does not send it to another worker."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)
T = TypeVar("T")
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 5.0


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says Postgres could not be reached (down, restarting, connection cut),
    rather than that the statement was wrong."""
    return (isinstance(exc, (OperationalError, InterfaceError))
            or (isinstance(exc, DBAPIError) and exc.connection_invalidated))


def waiting_out(write: Callable[[], T], limit_s: float, what: str,
                sleep: Callable[[float], None] = time.sleep) -> T:
    """``write()``, tried again with the same backoff as :class:`Outage` (blocking meanwhile)
    while Postgres is unreachable, for up to ``limit_s``; then its error propagates."""
    delay, deadline = FIRST_DELAY_S, time.monotonic() + limit_s
    while True:
        try:
            return write()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("%s: Postgres is unreachable; trying again in %.1f s", what, delay)
            sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)


class PostgresLost(Exception):
    """Postgres stayed unreachable for longer than the run may go on without it."""


class Outage:
    """Calls a run's writes, riding out Postgres being unreachable for up to ``limit_s``:
    a failed write is tried again after a backoff (0.5 s, doubling to 5 s), and every write
    meanwhile answers its default at once. ``on_start`` runs when an outage begins,
    ``on_end`` when a write succeeds again."""

    def __init__(self, limit_s: float, on_start: Callable[[], None], on_end: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limit_s = limit_s
        self._on_start = on_start
        self._on_end = on_end
        self._clock = clock
        self._since: float | None = None
        self._next_try = 0.0
        self._delay = FIRST_DELAY_S

    @property
    def down(self) -> bool:
        return self._since is not None

    def call(self, write: Callable[[], T], default: T) -> T:
        """``write()``, or ``default`` while Postgres is unreachable. Raises PostgresLost once
        it has been for longer than the limit, and any error that is not about reaching it."""
        now = self._clock()
        if self._since is not None and now < self._next_try:
            return default
        try:
            value = write()
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._failed(now, exc)
            return default
        if self._since is not None:
            log.warning("Postgres is reachable again after %.1f s", now - self._since)
            self._since, self._delay = None, FIRST_DELAY_S
            self._on_end()
        return value

    def _failed(self, now: float, exc: Exception) -> None:
        if self._since is None:
            self._since = now
            log.warning("Postgres is unreachable (%s); retrying for up to %s s",
                        type(exc.__cause__ or exc).__name__, self._limit_s)
            self._on_start()
        elif now - self._since > self._limit_s:
            raise PostgresLost(f"Postgres was unreachable for {now - self._since:.0f} s "
                               f"(worker.postgres_outage_seconds is {self._limit_s:g})") from exc
        self._next_try = now + self._delay
        self._delay = min(self._delay * 2, MAX_DELAY_S)

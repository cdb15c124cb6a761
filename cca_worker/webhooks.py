"""Delivering webhooks: a thread in each worker's main process takes due deliveries from the
outbox (``cca_core.webhooks.store``), signs and POSTs each, and records the answer.

Any 2xx is delivered. Anything else (an error status, a timeout, a refused connection) is
tried again after ``webhooks.backoff_seconds``, doubling up to ``max_backoff_seconds``, until
``max_attempts``; then the delivery is ``failed``. Redirects are not followed, and the target
is resolved again before each attempt: one that now resolves to a private address (and is
not allowed to) fails at once. Several workers share the outbox: each delivery is taken by
one of them (SKIP LOCKED) and leased while it is attempted."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from cca_core.errors import Invalid
from cca_core.infra.db import autocommit
from cca_core.settings import WebhookSettings
from cca_core.webhooks import signing, store
from cca_core.webhooks.targets import check_url, private_addresses
from cca_worker.background import Background

log = logging.getLogger(__name__)
TICK_S = 1.0
BATCH = 20
SENDERS = 4  # attempts in flight at once per worker
ERROR_CHARS = 300


class Dispatcher(Background):
    """Delivers due webhooks every second until stopped."""

    name = "webhooks"

    def __init__(self, engine: Engine, settings: Callable[[], WebhookSettings]) -> None:
        self._engine = engine
        self._settings = settings
        super().__init__()

    def _run(self) -> None:
        with ThreadPoolExecutor(SENDERS, thread_name_prefix="webhook") as senders:
            while not self._stopped.wait(TICK_S):
                try:
                    self.deliver_due(senders)
                except SQLAlchemyError as exc:
                    log.warning("webhooks: %s", exc)

    def deliver_due(self, senders: ThreadPoolExecutor) -> int:
        """Attempt every due delivery (a batch at a time); return how many were attempted."""
        settings = self._settings()
        lease_s = int(settings.timeout_seconds * 3) + 5
        with autocommit(self._engine) as connection:
            due = store.claim_due(connection, BATCH, lease_s)
        for _ in senders.map(lambda delivery: self._attempt(delivery, settings), due):
            pass
        return len(due)

    def _attempt(self, due: store.Due, settings: WebhookSettings) -> None:
        body = json.dumps({"id": due.id, "event": due.event, "created_at": due.created_at.isoformat(),
                           **due.payload}, separators=(",", ":")).encode()
        started, status, error, final = time.monotonic(), None, None, False
        try:
            refused = [] if due.allow_private else private_addresses(check_url(due.url),
                                                                      urlsplit(due.url).port)
            if refused:
                error, final = f"refused: the target resolves to {', '.join(refused)}", True
            else:
                answer = httpx.post(due.url, content=body, timeout=settings.timeout_seconds,
                                    headers=signing.headers(due.secret, due.event, due.id, body),
                                    follow_redirects=False)
                status = answer.status_code
                if not 200 <= status < 300:
                    error = f"HTTP {status}: {answer.text[:ERROR_CHARS]}"
        except Invalid as exc:
            error = exc.message
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {str(exc)[:ERROR_CHARS]}"
        delivered = error is None
        attempt = {"at": datetime.now(UTC).isoformat(), "status_code": status, "error": error,
                   "duration_ms": round((time.monotonic() - started) * 1000)}
        retry_in = None if delivered or final or due.attempts >= settings.max_attempts else \
            min(settings.max_backoff_seconds, settings.backoff_seconds * 2 ** (due.attempts - 1))
        with autocommit(self._engine) as connection:
            store.record(connection, due.id, attempt, delivered=delivered, retry_in_s=retry_in)
        if not delivered:
            log.warning("webhook delivery %s (%s) attempt %s: %s%s", due.id, due.event, due.attempts,
                        error, f"; again in {retry_in:g} s" if retry_in is not None else "; failed")

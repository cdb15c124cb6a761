"""Recover tasks whose message or worker was lost (run by one worker at a time)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from cca_core.infra.db import transaction
from cca_core.models import Task
from cca_core.tasks import store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    resent: int
    ended: int


def sweep(
    sessions: sessionmaker[Session], send: Callable[[Task], None], *, resend_after_s: int,
    max_attempts: int,
) -> SweepReport:
    """End runs that can never finish, then re-send the message of every task that may have
    lost it. A re-sent message for a task that is in fact fine is harmless: claims are
    conditional."""
    with transaction(sessions) as session:
        ended = store.end_abandoned(session.connection(), max_attempts)
        candidates = store.resend_candidates(session.connection(), resend_after_s)
    for task in candidates:
        log.warning("re-sending task %s (status %s, attempts %s)", task.id, task.status, task.attempts)
        send(task)
    return SweepReport(resent=len(candidates), ended=len(ended))

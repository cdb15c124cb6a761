"""End the row of a run-agent message that expired in the queue.

Celery drops a message whose ``expires`` passed before a worker took it (a scheduled fire
that waited too long) and sends ``task_revoked`` in the worker's main process; without this
the row would stay ``queued`` and the sweep would send it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from cca_core.infra.db import make_engine, make_session_factory, transaction
from cca_core.names import RUN_AGENT_TASK
from cca_core.settings import Settings
from cca_core.tasks.store import expire_task

log = logging.getLogger(__name__)


def make_expiry_handler(settings: Settings) -> Callable[..., None]:
    """A ``task_revoked`` receiver; it connects to Postgres on its first expired message."""
    sessions: list[sessionmaker[Session]] = []

    def on_revoked(sender: Any = None, request: Any = None, expired: bool = False, **_: Any) -> None:
        if not expired or getattr(sender, "name", None) != RUN_AGENT_TASK or not request.args:
            return
        if not sessions:
            sessions.append(make_session_factory(make_engine(settings.postgres.url, pool_size=0)))
        task_id = str(request.args[0])
        try:
            with transaction(sessions[0]) as session:
                ended = expire_task(session.connection(), task_id)
        except Exception:  # the sweep will re-send it and this runs again
            log.exception("task %s: its message expired but its row could not be ended", task_id)
            return
        if ended:
            log.warning("task %s: its message expired in the queue; ended as expired", task_id)

    return on_revoked

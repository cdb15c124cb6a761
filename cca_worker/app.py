"""The Celery app factory of the worker: settings, the run-agent task, pool hygiene."""

from __future__ import annotations

import os
import signal
from typing import Any

import redis
from billiard import current_process  # type: ignore[import-untyped]
from celery import Celery, signals

from cca_core.infra.connections import WORKER_SLOT_OVERFLOW, WORKER_SLOT_POOL_SIZE
from cca_core.infra.db import make_engine
from cca_core.infra.logs import configure_logging_for
from cca_core.names import RUN_AGENT_TASK
from cca_core.settings import Settings
from cca_core.tasks.dispatch import celery_config
from cca_worker.confinement import find_bwrap
from cca_worker.expiry import make_expiry_handler
from cca_worker.housekeeping import make_fleet_step
from cca_worker.process import set_parent_death_signal
from cca_worker.runner import WorkerContext, run_task

_contexts: dict[int, WorkerContext] = {}


def visibility_timeout(settings: Settings) -> int:
    """Above the longest default run, so Redis does not redeliver a message still running."""
    return max(3600, settings.agents.default_timeout_seconds * 2)


def make_celery(settings: Settings, *, runs_agents: bool = True) -> Celery:
    """Create the worker's Celery app. Connects to nothing until used. An app that runs
    agents checks their confinement first: raises Invalid (naming ``agents.confinement``)
    when bubblewrap cannot confine them here."""
    bwrap = find_bwrap() if runs_agents and settings.agents.confinement == "bwrap" else None
    app = Celery("cca")
    app.conf.update(celery_config(settings.redis.url, visibility_timeout(settings)))
    app.steps["consumer"].add(make_fleet_step(settings))
    signals.worker_process_init.connect(_die_with_the_worker, weak=False)
    signals.task_revoked.connect(make_expiry_handler(settings), weak=False)
    signals.setup_logging.connect(
        lambda **_: configure_logging_for(settings),
        weak=False)

    @app.task(name=RUN_AGENT_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
    def run_agent(self: Any, task_id: str) -> str | None:
        """Run one agent task by id (the message carries nothing else)."""
        return run_task(_context(settings, self.request.hostname or "worker", bwrap), task_id)

    return app


def _context(settings: Settings, hostname: str, bwrap: str | None) -> WorkerContext:
    """Per-process resources, made after the fork on first use."""
    pid = os.getpid()
    if pid not in _contexts:
        engine = make_engine(settings.postgres.url, pool_size=WORKER_SLOT_POOL_SIZE,
                             max_overflow=WORKER_SLOT_OVERFLOW)
        _contexts.clear()
        _contexts[pid] = WorkerContext(
            settings=settings, hostname=hostname, slot=getattr(current_process(), "index", 0) or 0,
            engine=engine,
            redis=redis.Redis.from_url(settings.redis.url, socket_timeout=10),
            bwrap=bwrap,
        )
    return _contexts[pid]


def _die_with_the_worker(**_: Any) -> None:
    """A pool process must not outlive its worker, so neither can its agent."""
    set_parent_death_signal(signal.SIGKILL)

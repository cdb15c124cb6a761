"""The Celery app factory of the worker: its configuration, its steps and signals, pool hygiene.
The task it runs is ``cca_worker.tasks.run_agent``."""

from __future__ import annotations

import signal
from typing import Any

import redis
from celery import Celery, signals

from cca_core.infra import reload
from cca_core.infra.logs import configure_logging_for
from cca_core.settings import Settings
from cca_core.tasks.dispatch import celery_config
from cca_worker import tasks
from cca_worker.agent import set_parent_death_signal
from cca_worker.confinement import find_bwrap
from cca_worker.expiry import make_expiry_handler
from cca_worker.housekeeping import make_fleet_step
from cca_worker.receipts import make_receipt_recorder


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
    signals.worker_process_init.connect(lambda sender, **_: tasks.prepare(sender, app), weak=False)
    signals.task_revoked.connect(make_expiry_handler(settings), weak=False)
    signals.task_received.connect(make_receipt_recorder(settings.redis.url), weak=False)
    signals.worker_ready.connect(lambda **_: reload_on_sighup(settings.redis.url), weak=False)
    signals.setup_logging.connect(
        lambda **_: configure_logging_for(settings),
        weak=False)
    tasks.configure(settings, bwrap)
    return app


def reload_on_sighup(redis_url: str) -> None:
    """SIGHUP asks the whole fleet to reload its configuration (cca_core.infra.reload), in
    place of Celery's restart of the worker (which would stop its running agents)."""
    def handler(signum: int, frame: Any) -> None:
        reload.bump(redis.Redis.from_url(redis_url, socket_timeout=5))

    signal.signal(signal.SIGHUP, handler)


def _die_with_the_worker(**_: Any) -> None:
    """A pool process must not outlive its worker, so neither can its agent."""
    set_parent_death_signal(signal.SIGKILL)

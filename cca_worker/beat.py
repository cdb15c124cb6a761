"""The beat: a Celery beat scheduler that fires the schedules stored in Postgres.

Run any number of beats; only the holder of a Postgres advisory lock fires, the others try
for it every tick and take over when the leader dies (the server frees the lock with the dead
leader's session). The leader reads the schedules every tick, so edits need no restart, and
fires on the lock's own connection: a beat that lost the lock cannot commit a fire. Fires are
deduplicated in the database as well, by (schedule id, fire time).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals
from celery.beat import Scheduler
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cca_core.infra.leader import LeaderLock
from cca_core.infra.logs import configure_logging_for
from cca_core.schedules.firing import fire_due
from cca_core.schedules.store import seconds_until_due
from cca_core.settings import Settings
from cca_core.tasks import store
from cca_core.tasks.dispatch import celery_config
from cca_core.tasks.submission import enqueue

log = logging.getLogger(__name__)
BEAT_LOCK_KEY = 0x63636162  # "ccab": one beat leads per database
MIN_SLEEP_S = 0.01


def make_scheduler(settings: Settings) -> type[Scheduler]:
    """Bind the settings into a Scheduler class (Celery instantiates schedulers itself)."""
    beat = settings.beat

    class DatabaseScheduler(Scheduler):
        """Fires the schedules in Postgres while holding the leader lock."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.lock = LeaderLock(settings.postgres.url, BEAT_LOCK_KEY,
                                   idle_timeout_s=beat.leader_timeout_seconds)
            self.leading = False
            self.closing = False
            super().__init__(*args, **kwargs)

        @property
        def info(self) -> str:
            return "    . schedules -> Postgres (one leader by advisory lock)"

        def setup_schedule(self) -> None:
            """Nothing to load: the schedules are read from Postgres at every tick."""

        def tick(self, *args: Any, **kwargs: Any) -> float:
            """Fire what is due if leading; return how long to sleep."""
            if self.closing:
                raise SystemExit
            try:
                return self._tick()
            except DBAPIError as exc:
                if self.closing:  # SIGTERM closed the lock's connection under a query
                    raise SystemExit from None
                log.warning("beat: Postgres failed (%s); stepping down until it answers", exc.orig)
                self.lock.lost()
            except Exception:  # a failed tick must not end the beat; the next one retries
                if self.closing:
                    raise SystemExit from None
                log.exception("beat tick failed")
            self._follow()
            return beat.tick_seconds

        def _tick(self) -> float:
            if not self.lock.acquire():
                self._follow()
                return beat.tick_seconds
            if not self.leading:
                log.info("beat: leading; firing the schedules in Postgres")
                self.leading = True
            with Session(bind=self.lock.connection, expire_on_commit=False) as session:
                with session.begin():
                    tasks = fire_due(session, agents=settings.agents,
                                     default_queue=settings.agents.queues[0],
                                     grace_s=beat.misfire_grace_seconds,
                                     max_fires=beat.max_fires_per_tick)
                unsent = [task for task in tasks if not enqueue(self.app, task)]
                with session.begin():
                    for task in unsent:  # Redis is down: the sweep's next turn sends them
                        store.mark_unsent(session.connection(), str(task.id))
                    wait = seconds_until_due(session)
            return beat.tick_seconds if wait is None else min(max(wait, MIN_SLEEP_S), beat.tick_seconds)

        def _follow(self) -> None:
            if self.leading:
                log.warning("beat: no longer leading; another beat fires now")
                self.leading = False

        def close(self) -> None:
            """Give the lock up at once (Celery calls this from its SIGTERM handler, so it
            runs no query: closing the connection ends the session that holds the lock)."""
            self.closing = True
            self.lock.release()
            super().close()

    return DatabaseScheduler


def make_beat_app(settings: Settings) -> Celery:
    """The beat's Celery app: a producer of run-agent messages, nothing else."""
    app = Celery("cca-beat")
    app.conf.update(celery_config(settings.redis.url, 3600))
    app.conf.beat_max_loop_interval = settings.beat.tick_seconds
    signals.setup_logging.connect(
        lambda **_: configure_logging_for(settings),
        weak=False)
    return app


def run_beat(settings: Settings, loglevel: str | None = None) -> None:
    """Run one beat process until SIGTERM or SIGINT (it then gives the lock up)."""
    level = {"warn": "warning"}.get(settings.daemon.log_level, settings.daemon.log_level)
    app = make_beat_app(settings)
    app.Beat(scheduler=make_scheduler(settings), loglevel=(loglevel or level).upper(),
             quiet=True).run()

"""A consumer bootstep: announce the worker, enforce its rolling token budget, send the tasks
a credential's usage window held back once it resets, run the sweep (recovery and retention),
deliver webhooks (a thread of its own: an endpoint may be slow) and embed the memories
stored without a vector (another thread: ``cca_worker.backfill``).

The announcement and the budget gate run on the consumer's timer in the worker's main
process: they are quick Redis calls, and the gate must act on the consumer. The gate stops
consuming every queue while the window is over budget (``cancel_task_queue``) and resumes
(``add_task_queue``) once it frees, so waiting tasks stay in Redis for other workers. The
chores that go to Postgres (the sweep, the fleet's samples, the spooled finishes, the tasks a
usage window held back) run on a thread of their own: on the timer they held up every
hand-off of the worker while they ran. Measured on 2 cores with 8 slots busy, each sweep
stopped 3-5 slots' next task for 100-250 ms (about 1% of slot time at 0.2 s runs), and a
slow Postgres would have stopped them all for as long.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import redis
from celery import bootsteps

from cca_core import __version__
from cca_core.credentials import fleet_credentials
from cca_core.credentials.pool import CredentialPool, describe
from cca_core.fleet.state import announce, online_workers, queue_depths, withdraw
from cca_core.fleet.trends import take_sample
from cca_core.infra.config import load_settings
from cca_core.infra.db import autocommit, make_engine, make_session_factory, transaction
from cca_core.infra.reload import Watcher
from cca_core.models import Task
from cca_core.names import SAMPLE_LOCK_KEY, SWEEP_LOCK_KEY
from cca_core.settings import Settings
from cca_core.tasks import deliveries, holds, store
from cca_core.tasks.submission import send
from cca_worker import budget, spool, tasks
from cca_worker.backfill import Backfill
from cca_worker.background import Repeating
from cca_worker.outage import is_transient
from cca_worker.receipts import INCARNATION
from cca_worker.retention import enforce_retention
from cca_worker.sweep import forget_settled, short_of_messages, sweep
from cca_worker.webhooks import Dispatcher

log = logging.getLogger(__name__)
TICK_S = 1.0


def make_fleet_step(settings: Settings) -> type[bootsteps.StartStopStep]:
    """Bind the settings into a bootstep class (Celery instantiates steps itself)."""

    class FleetStep(bootsteps.StartStopStep):
        requires = {"celery.worker.consumer.tasks:Tasks"}

        def start(self, c: Any) -> None:
            self.consumer = c
            self.settings = settings
            self.redis = redis.Redis.from_url(settings.redis.url, socket_timeout=5)
            self.watcher = Watcher(self.redis, settings, load_settings, c.hostname)
            self.engine = make_engine(settings.postgres.url, pool_size=0)
            self.sessions = make_session_factory(self.engine)
            self.queues = sorted(q.name for q in c.task_consumer.queues)
            self.paused = False
            self.started_at = time.time()
            self._lend(settings)
            self.parked: set[str] = set()
            self.last_sweep = 0.0
            self.short: set[str] = set()  # the queues short of messages at the last sweep
            self.tick()
            self.timer = c.timer.call_repeatedly(TICK_S, self.tick, priority=10)
            self.chores = Repeating("chores", TICK_S, self.do_chores)
            self.webhooks = Dispatcher(self.engine, lambda: self.settings.webhooks)
            self.backfill = Backfill(self.engine, lambda: self.settings.embeddings)
            for thread in (self.chores, self.webhooks, self.backfill):
                thread.start()

        def stop(self, c: Any) -> None:
            for thread in (self.chores, self.webhooks, self.backfill):
                thread.stop()
            with contextlib.suppress(redis.RedisError):
                withdraw(self.redis, c.hostname)

        def tick(self) -> None:
            """On the consumer's timer: quick, and nothing that waits for Postgres."""
            with _survived("fleet tick"):
                self._reload()
                self._gate_budget()
                self._announce()

        def do_chores(self) -> None:
            """On the chores thread."""
            with _survived("fleet chores"):
                self._replay_spool()
                self._send_after_resets()
                self._sample()
                if time.monotonic() - self.last_sweep >= self.settings.worker.sweep_interval_seconds:
                    self.last_sweep = time.monotonic()
                    self._sweep()

        def _announce(self) -> None:
            info = {"hostname": self.consumer.hostname, "pid": os.getpid(), "version": __version__,
                    "slots_total": self.settings.daemon.max_agents, "queues": self.queues,
                    "paused_for_budget": self.paused, "started_at": self.started_at,
                    "seen_at": time.time(), "credentials": self.credentials, "incarnation": INCARNATION}
            ttl = max(5, int(self.settings.worker.heartbeat_seconds * 5))
            announce(self.redis, info, ttl)

        def _replay_spool(self) -> None:
            """Record the finishes this worker's runs kept while Postgres was unreachable."""
            done = spool.replay(self.engine, self.redis,
                                spool.spool_dir(self.settings, self.consumer.hostname))
            if done:
                log.warning("recorded %s spooled finishes", done)

        def _reload(self) -> None:
            """Apply a reloaded configuration (cca_core.infra.reload): here, and in every pool
            process forked from now on (the running ones reload before their next run)."""
            fresh = self.watcher.check()
            if fresh is not None:
                self.settings = fresh
                self._lend(fresh)
                tasks.configure(fresh, tasks.current_bwrap())

        def _lend(self, settings: Settings) -> None:
            """The credentials this worker lends: announced (no secret), their windows watched."""
            credentials = fleet_credentials(settings, os.environ)
            self.credentials = describe(credentials)
            self.pool = (CredentialPool(self.redis, credentials, settings.agents.lease_seconds)
                         if credentials else None)

        def _send_after_resets(self) -> None:
            """When a credential's usage window resets, send the tasks that waited for it at
            once (as many as it may lend, or this worker has slots): the sweep would only
            send them at its next turn."""
            if self.pool is None:
                return
            parked, self.parked = self.parked, self.pool.parked()
            freed = parked - self.parked
            if not freed:
                return
            room = sum(self.pool.credentials[name].max_agents or self.settings.daemon.max_agents
                       for name in freed)
            with autocommit(self.engine) as connection:
                waiting = store.release_credential_waits(connection, room)
            log.info("usage window of %s reset: sending %s waiting tasks", ", ".join(sorted(freed)),
                     len(waiting))
            for task in waiting:
                self._send(task)

        def _gate_budget(self) -> None:
            limit = self.settings.worker.token_budget_per_window
            if not limit:
                return
            used = budget.used_in_window(self.redis, self.consumer.hostname,
                                         self.settings.worker.budget_window_seconds)
            if used >= limit and not self.paused:
                log.warning("token budget %s reached (%s used): pausing queues %s", limit, used,
                            self.queues)
                for queue in self.queues:
                    self.consumer.cancel_task_queue(queue)
                self.paused = True
            elif used < limit and self.paused:
                log.info("token budget window freed (%s used): resuming", used)
                for queue in self.queues:
                    self.consumer.add_task_queue(queue)
                self.paused = False

        def _sweep(self) -> None:
            interval = max(1, int(self.settings.worker.sweep_interval_seconds))
            if not self.redis.set(SWEEP_LOCK_KEY, self.consumer.hostname, nx=True, ex=interval):
                return
            # The queues first: a message taken after this is in a record read after it.
            depths = queue_depths(self.redis, set(self.settings.agents.queues))
            received = deliveries.read(self.redis)
            live = {worker["hostname"]: worker.get("incarnation") for worker in online_workers(self.redis)}
            untaken = deliveries.taken_by_the_gone(received, live)
            # A message between Redis and its record for a moment is not lost: a queue is short
            # only when it was at the last sweep too.
            short = short_of_messages(self.engine, depths, [delivery.task_id for delivery in received])
            confirmed, self.short = short & self.short, short
            report = sweep(self.engine, self._send, self.settings.agents,
                           resend_after_s=self.settings.worker.resend_after_seconds,
                           held=holds.held(self.redis), untaken=untaken, short=confirmed)
            forget_settled(self.engine, self.redis, received, untaken)
            if report.resent or report.ended or report.released:
                log.warning("sweep: re-sent %s, ended %s, released %s workflow steps",
                            report.resent, report.ended, report.released)
            if report.retried:
                log.info("sweep: sent %s tasks whose retry came due", report.retried)
            kept = enforce_retention(self.sessions, self.redis, self.settings.retention,
                                     self.settings.webhooks.keep_days, self.settings.dashboard.keep_days)
            if kept.task_events or kept.sessions or kept.streams or kept.deliveries or kept.samples:
                log.info("retention: deleted %s task events, %s stored sessions, %s event streams, "
                         "%s webhook deliveries, %s fleet samples", kept.task_events, kept.sessions,
                         kept.streams, kept.deliveries, kept.samples)

        def _sample(self) -> None:
            """Every dashboard.sample_seconds, one worker of the fleet records its queues and slots."""
            interval = self.settings.dashboard.sample_seconds
            if not self.redis.set(SAMPLE_LOCK_KEY, self.consumer.hostname, nx=True, ex=interval):
                return
            with transaction(self.sessions) as session:
                take_sample(session, self.redis, set(self.settings.agents.queues))

        def _send(self, task: Task) -> None:
            send(self.consumer.app, self.engine, task)

    return FleetStep


@contextlib.contextmanager
def _survived(what: str) -> Iterator[None]:
    """Log a failure and carry on: the timer or the thread must outlive it; the next turn
    tries again."""
    try:
        yield
    except Exception as exc:
        if not is_transient(exc):
            log.exception("%s failed", what)
        else:
            log.warning("%s: Postgres is unreachable (%s)", what, type(exc.__cause__ or exc).__name__)

"""The worker's Celery tasks: run one agent task by id (the message carries nothing else),
and the background jobs of memory and code search (cca_worker.jobs).

A module-level shared task; :func:`configure` (called by ``make_celery`` before the pool
forks) gives it the worker's settings, and each pool process makes its own context
(:class:`~cca_worker.runner.WorkerContext`) as it starts (:func:`prepare`), so that its first
task does not wait for it."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, replace
from typing import Any

import redis
from billiard import current_process  # type: ignore[import-untyped]
from celery import shared_task

from cca_core.credentials import fleet_credentials
from cca_core.credentials.pool import CredentialPool
from cca_core.infra.config import load_settings
from cca_core.infra.connections import WORKER_SLOT_OVERFLOW, WORKER_SLOT_POOL_SIZE
from cca_core.infra.db import make_engine
from cca_core.infra.reload import Watcher
from cca_core.names import INDEX_CODE_TASK, REEMBED_TASK, RUN_AGENT_TASK
from cca_core.settings import Settings
from cca_core.tasks.submission import Producer
from cca_worker.agent import kill_left_behind
from cca_worker.jobs import run_index_job, run_reembed_job
from cca_worker.proxy import ModelProxy
from cca_worker.runner import WorkerContext, run_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Setup:
    settings: Settings
    bwrap: str | None  # the bubblewrap program agents run under, if confined


_setup: _Setup | None = None
_contexts: dict[int, WorkerContext] = {}


def configure(settings: Settings, bwrap: str | None) -> None:
    """What this worker's tasks run with; set before the pool processes fork (and again on a
    reload, for the ones forked later)."""
    global _setup
    _setup = _Setup(settings, bwrap)
    _contexts.clear()


def current_bwrap() -> str | None:
    return _setup.bwrap if _setup is not None else None


@shared_task(name=RUN_AGENT_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def run_agent(self: Any, task_id: str) -> str | None:
    """Run one agent task by id."""
    return run_task(_context(self.request.hostname or "worker", self.app), task_id)


@shared_task(name=INDEX_CODE_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def index_code(self: Any, job_id: str) -> str | None:
    """Run one code index job by id."""
    ctx = _context(self.request.hostname or "worker", self.app)
    return run_index_job(ctx.engine, ctx.settings, job_id)


@shared_task(name=REEMBED_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def reembed(self: Any, job_id: str) -> str | None:
    """Run one re-embedding job by id."""
    ctx = _context(self.request.hostname or "worker", self.app)
    return run_reembed_job(ctx.engine, ctx.settings, job_id)


def prepare(hostname: str, producer: Producer) -> None:
    """Make this pool process's context as it starts (Celery's ``worker_process_init``) and
    open its first Postgres and Redis connections in the background: a pool process must
    answer its worker within seconds, whatever the state of Postgres. Measured on 2 cores,
    8 pool processes that made theirs at their first task started it 0.1-0.7 s late. Should
    making it fail, the first task tries again (and fails as it would have): a pool process
    that died here would only be started again, and again."""
    try:
        ctx = _make_context(hostname, producer)
    except Exception:
        log.exception("pool process %s: cannot make its context yet", os.getpid())
        return
    threading.Thread(target=_connect, args=(ctx,), name="cca-connect", daemon=True).start()


def _connect(ctx: WorkerContext) -> None:
    try:
        with ctx.engine.connect():
            pass
        ctx.redis.ping()
    except Exception as exc:  # the first task meets the outage and rides it out
        log.info("pool process %s: cannot connect yet (%s)", os.getpid(), exc)


def _model_proxy(settings: Settings, client: redis.Redis) -> ModelProxy | None:
    """This pool process's proxy to the model API, lending the fleet's credentials."""
    credentials = fleet_credentials(settings, os.environ)
    if not credentials:
        return None
    pool = CredentialPool(client, credentials, settings.agents.lease_seconds)
    return ModelProxy(pool, window_wait_s=settings.agents.window_wait_seconds)


def _context(hostname: str, producer: Producer) -> WorkerContext:
    """This pool process's resources (made by :func:`prepare` as it started); a reloaded
    configuration (cca_core.infra.reload) applies from the next run on."""
    _reload(_contexts.get(os.getpid()) or _make_context(hostname, producer))
    return _contexts[os.getpid()]


def _make_context(hostname: str, producer: Producer) -> WorkerContext:
    """Make this pool process's resources after the fork (connecting to nothing yet), and
    clear its slot."""
    if _setup is None:
        raise RuntimeError("cca_worker.tasks.configure was not called (make_celery calls it)")
    pid = os.getpid()
    settings = _setup.settings
    engine = make_engine(settings.postgres.url, pool_size=WORKER_SLOT_POOL_SIZE,
                         max_overflow=WORKER_SLOT_OVERFLOW)
    client = redis.Redis.from_url(settings.redis.url, socket_timeout=10)
    _contexts.clear()
    ctx = _contexts[pid] = WorkerContext(
        settings=settings, hostname=hostname, slot=getattr(current_process(), "index", 0) or 0,
        engine=engine, redis=client, bwrap=_setup.bwrap, producer=producer,
        proxy=_model_proxy(settings, client),
        # its settings were read when the worker started: any reload since replaces them
        watcher=Watcher(client, settings, load_settings, f"{hostname} pool {pid}", report=False,
                        generation=0),
    )
    _clear_slot(ctx)
    return ctx


def _clear_slot(ctx: WorkerContext) -> None:
    """Kill what a run of this slot left running when the pool process before this one died
    (its agent's processes carry the slot's HOME), before the slot runs anything."""
    left = kill_left_behind(f"HOME={ctx.slot_home}")
    if left:
        log.warning("slot %s: killed %s process trees left by a run whose pool process died",
                    ctx.slot_home.name, left)


def _reload(ctx: WorkerContext) -> None:
    """This process's context with the reloaded settings, if the configuration moved."""
    fresh = ctx.watcher.check() if ctx.watcher is not None else None
    if fresh is None:
        return
    proxy = ctx.proxy
    if fresh.credentials != ctx.settings.credentials:
        if proxy is not None:
            proxy.close()
        proxy = _model_proxy(fresh, ctx.redis)
    _contexts[os.getpid()] = replace(ctx, settings=fresh, proxy=proxy)

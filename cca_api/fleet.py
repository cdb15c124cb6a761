"""Health and fleet endpoints: /health, status, workers, credentials, Redis and Postgres status."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text

from cca_api import operations
from cca_api.auth import require_role
from cca_api.operations import ANY_OBJECT, Answer, operation
from cca_api.resources import Resources
from cca_core import __version__
from cca_core.credentials.pool import credential_status
from cca_core.fleet.metrics import FleetCollector
from cca_core.fleet.state import count_online, online_workers, queue_depths, workers_with_slots
from cca_core.infra import reload
from cca_core.infra.db import transaction
from cca_core.infra.migrate import current_revision
from cca_core.infra.redact import redact
from cca_core.tasks import store
from cca_core.tasks.status import ALL_STATUSES

bp = Blueprint("fleet", __name__)
RELOAD_POLL_S = 0.2


def resources() -> Resources:
    return current_app.extensions["cca"]


def _probe(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check()
    except Exception as exc:  # a probe reports any failure instead of raising it
        return {"ok": False, "error": redact(f"{type(exc).__name__}: {exc}")[:300]}
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return {"ok": True, "latency_ms": latency_ms, **(detail if isinstance(detail, dict) else {})}


@bp.get("/health")
@operation("Liveness of the API, Postgres, Redis and workers", ANY_OBJECT, public=True,
           more={503: Answer(ANY_OBJECT, "down")})
def health() -> tuple[dict[str, Any], int]:
    """Cheap to ask: one ``SELECT 1``, a PING, a TIME and a ZCOUNT (no key scan); limited per
    client IP like every other route (``cca_api`` checks the rate before any view)."""
    res = resources()

    def postgres() -> None:
        with res.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    redis_check = _probe(res.redis.ping)
    workers = _probe(lambda: {"online": count_online(res.redis)})
    checks = {"postgres": _probe(postgres), "redis": redis_check, "workers": workers}
    up = checks["postgres"]["ok"] and checks["redis"]["ok"]
    status = "ok" if up and workers.get("online") else ("degraded" if up else "down")
    return {"status": status, "version": __version__, **checks}, 200 if up else 503


@bp.get("/api/v1/status")
@operation("Fleet status", ANY_OBJECT)
def status() -> dict[str, Any]:
    res = resources()
    with transaction(res.sessions) as session:
        workers = workers_with_slots(res.redis, session)
        counts = store.count_by_status(session.connection())
    # Every queue a task may name, so tasks waiting on a queue with no worker online show.
    queues = set(res.settings.agents.queues) | {q for worker in workers for q in worker["queues"]}
    return {
        "version": __version__,
        "workers": {"online": len(workers),
                    "slots_total": sum(worker["slots_total"] for worker in workers),
                    "slots_busy": sum(worker["slots_busy"] for worker in workers)},
        "queues": queue_depths(res.redis, queues),
        "tasks": {name: counts.get(name, 0) for name in ALL_STATUSES},
    }


@bp.get("/metrics")
@operation("Prometheus metrics of the fleet", {"type": "string"}, media="text/plain")
def metrics() -> Response:
    """Prometheus text format, fleet-wide (see cca_core.fleet.metrics)."""
    res = resources()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(res.sessions, res.redis, res.settings.agents.queues[0]))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/api/v1/workers")
@operation("Workers online", ANY_OBJECT)
def workers() -> dict[str, Any]:
    res = resources()
    with transaction(res.sessions) as session:
        return {"workers": workers_with_slots(res.redis, session)}


@bp.get("/api/v1/credentials")
@operation("Model API credentials the workers lend (admin): agents holding each, its usage "
           "window, its last rate-limit headers, today's requests and tokens", ANY_OBJECT)
def credentials() -> dict[str, Any]:
    require_role("admin")
    res = resources()
    announced: dict[str, Any] = {}
    for worker in online_workers(res.redis):
        for name, about in (worker.get("credentials") or {}).items():
            announced.setdefault(name, about)
    return {"credentials": credential_status(res.redis, announced)}


class ReloadQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wait_seconds: float = Field(default=3.0, ge=0, le=30,
                                description="How long to wait for the workers' reports.")


@bp.post("/api/v1/admin/config/reload")
@operation("Reload the configuration in every API process and worker (admin): each reads its "
           "files and environment again, applies the reloadable keys and reports what changed "
           "and what needs a restart", ANY_OBJECT, query=ReloadQuery, errors=(403, 422))
def reload_config() -> dict[str, Any]:
    require_role("admin")
    asked = operations.query(ReloadQuery)
    res = resources()
    generation = reload.bump(res.redis)
    if res.watcher is not None and (fresh := res.watcher.check()) is not None:
        res.settings = fresh
    expected = {worker["hostname"] for worker in online_workers(res.redis)}
    expected |= {res.watcher.process} if res.watcher is not None else set()
    deadline = time.monotonic() + asked.wait_seconds
    while True:
        found = reload.reports(res.redis, generation)
        reported = {report["process"] for report in found}
        if expected <= reported or time.monotonic() >= deadline:
            break
        time.sleep(RELOAD_POLL_S)
    return {"generation": generation, "processes": found, "not_reported": sorted(expected - reported),
            "reloadable": list(reload.RELOADABLE)}


@bp.get("/api/v1/redis/status")
@operation("Redis status", ANY_OBJECT)
def redis_status() -> dict[str, Any]:
    res = resources()

    def info() -> dict[str, Any]:
        server = res.redis.info()
        return {key: server.get(key) for key in (
            "redis_version", "uptime_in_seconds", "connected_clients", "used_memory_human",
            "aof_enabled", "role")}

    return {"redis": _probe(info)}


@bp.get("/api/v1/postgres/status")
@operation("Postgres status", ANY_OBJECT)
def postgres_status() -> dict[str, Any]:
    res = resources()

    def info() -> dict[str, Any]:
        with res.engine.connect() as connection:
            version = connection.execute(text("SHOW server_version")).scalar()
            vector = connection.execute(
                text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar()
            revision = current_revision(connection)
        pool = res.engine.pool
        return {"server_version": version, "pgvector_version": vector,
                "schema_revision": revision,
                "pool": {"size": pool.size(), "checked_out": pool.checkedout(),  # type: ignore[attr-defined]
                         "overflow": pool.overflow()}}  # type: ignore[attr-defined]

    return {"postgres": _probe(info)}

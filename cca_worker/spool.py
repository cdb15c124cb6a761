"""A run's finish, made durable: when Postgres cannot record it, it is kept in the worker's
spool on disk (one JSON file per run) and recorded when Postgres is back (the worker's tick
tries every second, and at start), so a finished run is neither run again nor marked lost.
Its task is held in Redis meanwhile (``cca_core.tasks.holds``)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Connection, Engine

from cca_core.infra.db import autocommit
from cca_core.settings import Settings
from cca_core.tasks import holds, store
from cca_core.tasks.outcome import Outcome
from cca_worker.outage import is_transient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finish:
    """How one run ended, as its finishing write records it: ``retry_at`` parks the task
    (``waiting_for``) instead of ending it."""

    task_id: str
    attempt: int
    outcome: Outcome
    events: list[dict[str, Any]]
    retry_at: datetime | None = None
    waiting_for: str = ""


def spool_dir(settings: Settings, hostname: str) -> Path:
    """Where a worker keeps the finishes Postgres could not take (its own: it replays them)."""
    return settings.data_dir / "spool" / hostname


def record(connection: Connection, finish: Finish) -> tuple[bool, bool]:
    """Write the finish (and the run's last events); (parked, finished). Both are False when
    the run no longer owned its task. A retry refused (cancelled meanwhile) ends the task."""
    parked = finish.retry_at is not None and store.retry_task(
        connection, finish.task_id, finish.attempt, finish.outcome, finish.retry_at, finish.events,
        waiting_for=finish.waiting_for)
    # A refused retry recorded the events already.
    finished = not parked and store.finish_task(
        connection, finish.task_id, finish.attempt, finish.outcome,
        [] if finish.retry_at is not None else finish.events)
    return parked, finished


def keep(directory: Path, finish: Finish) -> Path:
    """Write ``finish`` to the spool (atomically, synced, readable by the worker's user only)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{finish.task_id}.{finish.attempt}.json"
    partial = path.with_suffix(".part")
    body = {**asdict(finish), "retry_at": finish.retry_at.isoformat() if finish.retry_at else None}
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(body, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    return path


def load(path: Path) -> Finish:
    body = json.loads(path.read_text())
    return Finish(task_id=body["task_id"], attempt=body["attempt"], outcome=Outcome(**body["outcome"]),
                  events=body["events"], waiting_for=body["waiting_for"],
                  retry_at=datetime.fromisoformat(body["retry_at"]) if body["retry_at"] else None)


def replay(engine: Engine, client: redis.Redis, directory: Path) -> int:
    """Record the spooled finishes, oldest first, and release their holds; stop at the first
    that Postgres cannot take yet. Returns how many were recorded."""
    if not directory.is_dir():
        return 0
    done = 0
    for path in sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            finish = load(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("spooled finish %s cannot be read (%s); set aside as .bad", path, exc)
            path.rename(path.with_suffix(".bad"))
            continue
        try:
            with autocommit(engine) as connection:
                parked, finished = record(connection, finish)
        except Exception as exc:
            if is_transient(exc):
                return done
            # Postgres refused it for good: set it aside rather than fail every tick on it.
            log.exception("spooled finish %s was refused; set aside as .bad", path)
            path.rename(path.with_suffix(".bad"))
            continue
        path.unlink()
        holds.release(client, finish.task_id)
        done += 1
        log.warning("task %s: recorded its spooled finish (%s)", finish.task_id,
                    "parked for a retry" if parked else finish.outcome.status if finished
                    else "no longer its run's: dropped")
    return done

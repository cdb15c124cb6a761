"""Background jobs on the workers (a code index, a re-embedding): their row, progress and
cancellation. The API creates and cancels; the worker running one reports progress and
checks for a cancel between batches."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from cca_core.errors import Conflict, NotFound
from cca_core.models import Job
from cca_core.tasks.store import parse_task_id

ENDED = ("succeeded", "failed", "cancelled")


def create_job(connection: Connection, kind: str, tenant: str, params: dict[str, Any],
               created_by: str | None) -> Job:
    row = connection.execute(
        insert(Job).values(id=uuid.uuid4(), kind=kind, tenant=tenant, params=params,
                                      status="queued", created_by=created_by)
        .returning(*Job.__table__.c)).one()
    return _job(row)


def get_job(connection: Connection, job_id: str, kind: str, tenant: str | None) -> Job:
    """The job, if the caller's tenant (None: any) may see it. Raises NotFound."""
    query = select(Job.__table__).where(Job.id == parse_task_id(job_id, "job"), Job.kind == kind)
    if tenant is not None:
        query = query.where(Job.tenant == tenant)
    row = connection.execute(query).first()
    if row is None:
        raise NotFound(f"no {kind} job {job_id}")
    return _job(row)


def list_jobs(connection: Connection, kind: str, tenant: str | None, limit: int = 50) -> list[Job]:
    query = select(Job.__table__).where(Job.kind == kind)
    if tenant is not None:
        query = query.where(Job.tenant == tenant)
    rows = connection.execute(query.order_by(Job.created_at.desc()).limit(limit))
    return [_job(row) for row in rows]


def request_cancel(connection: Connection, job_id: str, kind: str, tenant: str | None) -> Job:
    """Ask the job to stop; one not started yet ends at once. Raises NotFound, or Conflict
    when it has ended."""
    job = get_job(connection, job_id, kind, tenant)
    if job.status in ENDED:
        raise Conflict(f"job {job_id} has ended ({job.status})")
    connection.execute(update(Job).where(Job.id == job.id).values(cancel_requested=True))
    connection.execute(update(Job).where(Job.id == job.id, Job.status == "queued")
                       .values(status="cancelled", finished_at=func.now()))
    return get_job(connection, job_id, kind, tenant)


def start_job(connection: Connection, job_id: str) -> Job | None:
    """Mark it running; None if it was cancelled or has ended meanwhile (or is gone)."""
    row = connection.execute(
        update(Job).where(Job.id == uuid.UUID(job_id), Job.status.in_(("queued", "running")),
                          Job.cancel_requested.is_(False))
        .values(status="running", started_at=func.now()).returning(*Job.__table__.c)).first()
    return _job(row) if row is not None else None


def report(connection: Connection, job_id: str, progress: dict[str, Any]) -> bool:
    """Record progress; True if a cancel was asked for (the job should stop)."""
    row = connection.execute(
        update(Job).where(Job.id == uuid.UUID(job_id)).values(progress=progress)
        .returning(Job.cancel_requested)).first()
    return row is None or bool(row.cancel_requested)


def finish_job(connection: Connection, job_id: str, status: str, progress: dict[str, Any],
               error: str | None = None) -> None:
    connection.execute(update(Job).where(Job.id == uuid.UUID(job_id)).values(
        status=status, progress=progress, error=error, finished_at=func.now()))


def _job(row: Any) -> Job:
    return Job(**dict(row._mapping))

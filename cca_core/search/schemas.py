"""The API shapes of background jobs and of what a search says about itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel

from cca_core.models import Job

SearchModeName = Literal["hybrid", "vector", "full_text"]


class JobView(BaseModel):
    id: UUID
    kind: str
    status: str  # queued | running | succeeded | failed | cancelled
    params: dict[str, Any]
    progress: dict[str, Any]  # files, chunks, errors, percent... (as the job reports them)
    error: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(BaseModel):
    jobs: list[JobView]


def job_view(job: Job) -> JobView:
    return JobView(id=job.id, kind=job.kind, status=job.status, params=job.params,
                   progress=job.progress or {}, error=job.error,
                   cancel_requested=job.cancel_requested, created_at=job.created_at,
                   started_at=job.started_at, finished_at=job.finished_at)


class SearchInfo(BaseModel):
    """How a search went: ``mode`` is what ran (``full_text`` when vectors were asked for but
    the provider is down: ``degraded`` says why), ``space`` the vector space searched."""

    mode: SearchModeName
    degraded: str | None = None
    space: str | None = None

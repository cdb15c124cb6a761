"""Background jobs a worker runs in one of its slots: index a code tree, re-embed into the
configured model. Each reports progress to its ``jobs`` row and stops between batches when
cancelled."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from cca_core.code.indexing import Progress, Tree, embedding_text, index_tree
from cca_core.embeddings import EmbeddingUnavailable
from cca_core.embeddings.providers import embedder_for
from cca_core.errors import Invalid
from cca_core.infra.db import autocommit
from cca_core.search import jobs
from cca_core.search.reembed import reembed
from cca_core.settings import Settings
from cca_core.tasks.workspace import check_cwd

log = logging.getLogger(__name__)
REEMBEDDED = {  # what a re-embedding embeds of each table's rows: what storing them did
    "memories": ("content", lambda row: row.content),
    "code_chunks": ("path, kind, symbol, content",
                    lambda row: embedding_text(row.path, row.kind, row.symbol, row.content)),
}


def run_index_job(engine: Engine, settings: Settings, job_id: str) -> str | None:
    job = _start(engine, job_id)
    if job is None:
        return None
    params = job.params
    try:
        root = check_cwd(params["root"], settings.agents.allowed_roots, field="path")
        if not root.is_dir():
            raise Invalid(f"path {root} is not a directory on worker", field="path")
    except Invalid as exc:
        return _end(engine, job_id, "failed", {}, exc.message)
    tree = Tree(job.tenant, Path(root), tuple(params["extensions"]), tuple(params["excludes"]))

    def report(progress: Progress) -> bool:
        return _report(engine, job_id, progress.as_dict())

    embedder = embedder_for(settings.embeddings)
    try:
        progress, cancelled = index_tree(engine, embedder, tree, settings.code,
                                         settings.embeddings.batch_size, report)
    except Exception as exc:  # an unexpected failure ends the job, saying what
        log.exception("code index job %s failed", job_id)
        return _end(engine, job_id, "failed", {}, f"{type(exc).__name__}: {exc}"[:1000])
    return _end(engine, job_id, "cancelled" if cancelled else "succeeded", progress.as_dict())


def run_reembed_job(engine: Engine, settings: Settings, job_id: str) -> str | None:
    if _start(engine, job_id) is None:
        return None
    try:
        progress, cancelled = reembed(engine, embedder_for(settings.embeddings), REEMBEDDED,
                                      settings.embeddings.batch_size * 4,
                                      partial(_report, engine, job_id))
    except EmbeddingUnavailable as exc:
        return _end(engine, job_id, "failed", {}, str(exc))
    return _end(engine, job_id, "cancelled" if cancelled else "succeeded", progress)


def _start(engine: Engine, job_id: str) -> Any:
    with autocommit(engine) as connection:
        job = jobs.start_job(connection, job_id)
    if job is None:
        log.info("job %s: cancelled or ended before it started", job_id)
    return job


def _report(engine: Engine, job_id: str, progress: dict[str, Any]) -> bool:
    with autocommit(engine) as connection:
        return jobs.report(connection, job_id, progress)


def _end(engine: Engine, job_id: str, status: str, progress: dict[str, Any],
         error: str | None = None) -> str:
    with autocommit(engine) as connection:
        jobs.finish_job(connection, job_id, status, progress, error)
    log.info("job %s %s%s", job_id, status, f": {error}" if error else "")
    return status

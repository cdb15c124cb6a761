"""Code index endpoints: index a tree under the allowed roots (a background job on the
workers, with progress and cancel), search it (hybrid), and what it holds; per tenant.
A fleet agent's bridge (task token) may use them all."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from cca_api import operations
from cca_api.auth import current, require_role
from cca_api.operations import operation
from cca_api.resources import Resources
from cca_core.code.schemas import CodeIndexCreate, CodeResults, CodeSearch, CodeStats, code_hit
from cca_core.code.search import code_stats, search_code
from cca_core.embeddings.providers import embedder_for
from cca_core.errors import Invalid
from cca_core.names import INDEX_CODE_TASK
from cca_core.search import jobs
from cca_core.search.schemas import JobPage, JobView, job_view
from cca_core.tasks.workspace import check_cwd

bp = Blueprint("code", __name__, url_prefix="/api/v1/code")
KIND = "code_index"


def resources() -> Resources:
    return current_app.extensions["cca"]


@bp.post("/index")
@operation("Index a directory inside the allowed roots: a job on the workers; re-indexing "
           "touches only changed files", JobView, status=202, body=CodeIndexCreate,
           errors=(400, 403, 413, 415, 422))
def index() -> tuple[dict[str, Any], int]:
    principal = require_role("admin", "submitter")
    body = operations.body(CodeIndexCreate)
    res = resources()
    root = check_cwd(body.path, res.settings.agents.allowed_roots, field="path")
    if not root.is_dir():
        raise Invalid(f"path {body.path} is not a directory", field="path")
    extensions = body.extensions if body.extensions is not None else res.settings.code.extensions
    if any(not ext.startswith(".") or len(ext) > 20 for ext in extensions):
        raise Invalid("each extension starts with a dot, e.g. .py", field="extensions")
    params = {"root": str(root), "extensions": extensions,
              "excludes": body.excludes if body.excludes is not None else res.settings.code.excludes}
    with res.engine.begin() as connection:
        job = jobs.create_job(connection, KIND, principal.tenant, params, principal.name)
    res.celery.send_task(INDEX_CODE_TASK, args=[str(job.id)], queue=res.settings.agents.queues[0])
    return job_view(job).model_dump(mode="json"), 202


@bp.get("/index")
@operation("The code index jobs, newest first", JobPage)
def index_jobs() -> dict[str, Any]:
    with resources().engine.begin() as connection:
        found = jobs.list_jobs(connection, KIND, current().scope())
    return JobPage(jobs=[job_view(job) for job in found]).model_dump(mode="json")


@bp.get("/index/<job_id>")
@operation("A code index job: status and progress (files, chunks, errors, percent)", JobView,
           errors=(404,))
def index_job(job_id: str) -> dict[str, Any]:
    with resources().engine.begin() as connection:
        job = jobs.get_job(connection, job_id, KIND, current().scope())
    return job_view(job).model_dump(mode="json")


@bp.post("/index/<job_id>/cancel")
@operation("Cancel a code index job (it stops between batches; what it wrote stays)", JobView,
           errors=(403, 404, 409))
def cancel(job_id: str) -> dict[str, Any]:
    scope = require_role("admin", "submitter").scope()
    with resources().engine.begin() as connection:
        job = jobs.request_cancel(connection, job_id, KIND, scope)
    return job_view(job).model_dump(mode="json")


@bp.post("/search")
@operation("Search the indexed code by meaning and words (hybrid)", CodeResults,
           body=CodeSearch, errors=(400, 413, 415, 422))
def search() -> dict[str, Any]:
    body = operations.body(CodeSearch)
    res = resources()
    with res.engine.begin() as connection:
        found = search_code(connection, embedder_for(res.settings.embeddings), body.query,
                            tenant=current().scope(), limit=body.limit,
                            ef_search=res.settings.memory.ef_search, language=body.language,
                            path_prefix=body.path_prefix, root=body.root, mode=body.mode)
    return CodeResults(results=[code_hit(row) for row in found.rows], mode=found.mode,
                       degraded=found.degraded, space=found.space).model_dump(mode="json")


@bp.get("/stats")
@operation("What the code index holds: roots, files, chunks by language", CodeStats)
def stats() -> dict[str, Any]:
    res = resources()
    with res.engine.begin() as connection:
        found = code_stats(connection, current().scope(), embedder_for(res.settings.embeddings).space)
    return CodeStats(**found).model_dump(mode="json")

"""Memory endpoints: store, search (hybrid, scoped to the caller's tenant), stats, export
and import as JSONL, and re-embedding into the configured model. A fleet agent's bridge
(task token) may search and store; what it stores records its task."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app

from cca_api import operations
from cca_api.auth import Principal, current, require_role
from cca_api.operations import ANY_OBJECT, operation
from cca_api.resources import Resources
from cca_core.embeddings import Embedder
from cca_core.embeddings.providers import embedder_for
from cca_core.memory import store
from cca_core.memory.entries import NewMemory
from cca_core.memory.schemas import (
    MemoryCreate,
    MemoryImport,
    MemoryResults,
    MemorySearch,
    MemoryStats,
    MemoryStored,
    memory_view,
)
from cca_core.names import REEMBED_TASK
from cca_core.search import jobs
from cca_core.search.schemas import JobView, job_view

bp = Blueprint("memory", __name__, url_prefix="/api/v1/memory")


def resources() -> Resources:
    return current_app.extensions["cca"]


def embedder() -> Embedder:
    return embedder_for(resources().settings.embeddings)


@bp.post("/search")
@operation("Search memories by meaning and words (hybrid), within the caller's tenant",
           MemoryResults, body=MemorySearch, errors=(400, 413, 415, 422))
def search() -> dict[str, Any]:
    body = operations.body(MemorySearch)
    res = resources()
    with res.engine.begin() as connection:
        found = store.search_memories(
            connection, embedder(), body.query, tenant=current().scope(), limit=body.k,
            ef_search=res.settings.memory.ef_search, kind=body.kind, tags=body.tags,
            mode=body.mode)
    return MemoryResults(results=[memory_view(row) for row in found.rows], mode=found.mode,
                         degraded=found.degraded, space=found.space).model_dump(mode="json")


@bp.post("")
@operation("Store a memory (a running task's bridge records its task as the source)",
           MemoryStored, status=201, body=MemoryCreate, errors=(400, 403, 413, 415, 422))
def create() -> tuple[dict[str, Any], int]:
    principal = require_role("admin", "submitter")
    body = operations.body(MemoryCreate)
    memory = NewMemory(content=body.content, kind=body.kind, tags=tuple(body.tags),
                       source_task_id=principal.task_id)
    return _stored(principal, [memory]), 201


def _stored(principal: Principal, memories: list[NewMemory]) -> dict[str, Any]:
    with resources().engine.begin() as connection:
        ids, degraded = store.add_memories(connection, embedder(), principal.tenant, memories,
                                           principal.name)
    return MemoryStored(ids=ids, degraded=degraded).model_dump(mode="json")


@bp.get("/stats")
@operation("How many memories there are, by kind and vector space", MemoryStats)
def stats() -> dict[str, Any]:
    with resources().engine.begin() as connection:
        found = store.stats(connection, current().scope(), embedder().space)
    return MemoryStats(**found).model_dump(mode="json")


@bp.get("/export")
@operation("Every memory of the caller's tenant, one JSON object per line", ANY_OBJECT,
           media="application/x-ndjson")
def export() -> Response:
    require_role("admin", "submitter")
    with resources().engine.begin() as connection:
        lines = [json.dumps(record, ensure_ascii=False) + "\n"
                 for record in store.export(connection, current().scope())]
    return Response("".join(lines), mimetype="application/x-ndjson")


@bp.post("/import")
@operation("Store exported memories (up to 1000 a request) in the caller's tenant",
           MemoryStored, status=201, body=MemoryImport, errors=(400, 403, 413, 415, 422))
def import_() -> tuple[dict[str, Any], int]:
    principal = require_role("admin", "submitter")
    body = operations.body(MemoryImport)
    memories = store.to_new(item.model_dump() for item in body.memories)
    return _stored(principal, memories), 201


@bp.post("/reembed")
@operation("Start a job on the workers that embeds every memory and code chunk not yet in "
           "the configured model's vector space", JobView, status=202, errors=(403,))
def reembed() -> tuple[dict[str, Any], int]:
    principal = require_role("admin")
    res = resources()
    with res.engine.begin() as connection:
        job = jobs.create_job(connection, "reembed", principal.tenant,
                              {"space": embedder_for(res.settings.embeddings).space}, principal.name)
    res.celery.send_task(REEMBED_TASK, args=[str(job.id)], queue=res.settings.agents.queues[0])
    return job_view(job).model_dump(mode="json"), 202


@bp.get("/reembed/<job_id>")
@operation("A re-embedding job's status and progress", JobView, errors=(404,))
def reembed_status(job_id: str) -> dict[str, Any]:
    with resources().engine.begin() as connection:
        job = jobs.get_job(connection, job_id, "reembed", current().scope())
    return job_view(job).model_dump(mode="json")

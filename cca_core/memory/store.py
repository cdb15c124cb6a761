"""The ``memories`` table: store (embedding what it can), search, stats, export and import,
and the credit a memory earns when a task that recalled it ends."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.engine import Connection

from cca_core.embeddings import Embedder, EmbeddingUnavailable
from cca_core.memory.entries import NewMemory
from cca_core.models import Memory
from cca_core.search import vectors
from cca_core.search.fusion import words
from cca_core.search.hybrid import Found, SearchMode, narrowed, search

COLUMNS = ("id, tenant, kind, content, tags, source_task_id, successes, failures, space, "
           "created_by, created_at")
EXPORTED = ("kind", "content", "tags", "successes", "failures", "source_task_id", "created_at")


def add_memories(connection: Connection, embedder: Embedder | None, tenant: str,
                 memories: Sequence[NewMemory], created_by: str | None) -> tuple[list[uuid.UUID], str | None]:
    """Insert the memories with their vectors; without, if the provider is down or there is
    no ``embedder`` (full text finds them until a worker's backfill adds the vectors).
    Returns their ids and why they have no vectors, if the provider failed."""
    if not memories:
        return [], None
    embedded, why_not = _embed(embedder, [m.content for m in memories]) if embedder else (None, None)
    vectors_or_none: list[list[float] | None] = list(embedded) if embedded else [None] * len(memories)
    space = embedder.space if embedder and embedded else None
    ids = [_insert(connection, tenant, memory, created_by, space, vector)
           for memory, vector in zip(memories, vectors_or_none, strict=True)]
    return ids, why_not


def _embed(embedder: Embedder, texts: list[str]) -> tuple[list[list[float]] | None, str | None]:
    try:
        return embedder.embed(texts), None
    except EmbeddingUnavailable as exc:
        return None, f"stored without a vector: {exc}"


def _insert(connection: Connection, tenant: str, memory: NewMemory, created_by: str | None,
            space: str | None, vector: list[float] | None) -> uuid.UUID:
    """One row; ``space`` names the space of ``vector`` (both None: no vector yet)."""
    if space is not None and vector is not None:
        vectors.ensure_index(connection, "memories", space, len(vector))
    memory_id = uuid.uuid4()
    connection.execute(text(
        "INSERT INTO memories (id, tenant, kind, content, tags, source_task_id, successes, "
        "failures, space, embedding, search_text, created_by) VALUES (:id, :tenant, :kind, "
        ":content, :tags, :source, :successes, :failures, :space, CAST(:embedding AS vector), "
        "to_tsvector('english', :words), :created_by)"), {
        "id": memory_id, "tenant": tenant, "kind": memory.kind, "content": memory.content,
        "tags": list(memory.tags), "source": memory.source_task_id,
        "successes": memory.successes, "failures": memory.failures,
        "space": space,
        "embedding": vectors.as_text(vector) if vector is not None else None,
        "words": " ".join([memory.kind, *memory.tags, words(memory.content)]),
        "created_by": created_by})
    return memory_id


def search_memories(connection: Connection, embedder: Embedder, query: str, *,
                    tenant: str | None, limit: int, ef_search: int, kind: str | None = None,
                    tags: Sequence[str] = (), mode: SearchMode = "hybrid") -> Found:
    """The memories that best answer ``query`` (of ``tenant``; None: every tenant)."""
    target = narrowed("memories", COLUMNS, {"tenant = :value": tenant, "kind = :value": kind,
                                            "tags @> CAST(:value AS text[])": list(tags)})
    return search(connection, target, query, embedder, limit=limit, ef_search=ef_search, mode=mode)


def credit(connection: Connection, memory_ids: Sequence[str], succeeded: bool) -> None:
    """A task that recalled these memories ended: count its success or failure on each."""
    if not memory_ids:
        return
    column = Memory.successes if succeeded else Memory.failures
    connection.execute(update(Memory).where(Memory.id.in_([uuid.UUID(m) for m in memory_ids]))
                       .values({column: column + 1}))


def stats(connection: Connection, tenant: str | None, space: str) -> dict[str, Any]:
    query = select(Memory.kind, Memory.space, func.count()).group_by(Memory.kind, Memory.space)
    if tenant is not None:
        query = query.where(Memory.tenant == tenant)
    by_kind: dict[str, int] = {}
    by_space: dict[str, int] = {}
    for kind, row_space, count in connection.execute(query):
        by_kind[kind] = by_kind.get(kind, 0) + count
        by_space[row_space or "none"] = by_space.get(row_space or "none", 0) + count
    total = sum(by_kind.values())
    return {"total": total, "by_kind": by_kind, "by_space": by_space, "space": space,
            "embedded": by_space.get(space, 0), "not_embedded": total - by_space.get(space, 0)}


def export(connection: Connection, tenant: str | None) -> Iterator[dict[str, Any]]:
    query = select(*(getattr(Memory, name) for name in EXPORTED)).order_by(Memory.created_at)
    if tenant is not None:
        query = query.where(Memory.tenant == tenant)
    for row in connection.execute(query):
        record = dict(row._mapping)
        record["source_task_id"] = str(record["source_task_id"]) if record["source_task_id"] else None
        record["created_at"] = record["created_at"].isoformat()
        yield record


def to_new(records: Iterable[dict[str, Any]]) -> list[NewMemory]:
    """Exported records as memories to store (their source tasks may not exist here)."""
    return [NewMemory(content=r["content"], kind=r.get("kind") or "note",
                      tags=tuple(r.get("tags") or ()), successes=int(r.get("successes") or 0),
                      failures=int(r.get("failures") or 0)) for r in records]

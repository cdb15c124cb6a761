"""Searching the code index, and what it holds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from cca_core.embeddings import Embedder
from cca_core.models import CodeChunk, CodeFile
from cca_core.search.hybrid import Found, SearchMode, narrowed, search

COLUMNS = "id, root, path, language, symbol, kind, start_line, end_line, content"


def search_code(connection: Connection, embedder: Embedder, query: str, *, tenant: str | None,
                limit: int, ef_search: int, language: str | None = None,
                path_prefix: str | None = None, root: str | None = None,
                mode: SearchMode = "hybrid") -> Found:
    target = narrowed("code_chunks", COLUMNS, {
        "tenant = :value": tenant, "language = :value": language, "root = :value": root,
        "starts_with(path, :value)": path_prefix.removeprefix("./") if path_prefix else None})
    return search(connection, target, query, embedder, limit=limit, ef_search=ef_search, mode=mode)


def code_stats(connection: Connection, tenant: str | None, space: str) -> dict[str, Any]:
    files = select(CodeFile.root, func.count(), func.sum(CodeFile.chunks),
                   func.max(CodeFile.indexed_at)).group_by(CodeFile.root)
    chunks = select(CodeChunk.language, CodeChunk.space, func.count()).group_by(
        CodeChunk.language, CodeChunk.space)
    if tenant is not None:
        files = files.where(CodeFile.tenant == tenant)
        chunks = chunks.where(CodeChunk.tenant == tenant)
    roots = [{"root": root, "files": count, "chunks": int(total or 0),
              "indexed_at": last.isoformat() if last else None}
             for root, count, total, last in connection.execute(files)]
    by_language: dict[str, int] = {}
    embedded = 0
    for language, row_space, count in connection.execute(chunks):
        by_language[language or "other"] = by_language.get(language or "other", 0) + count
        embedded += count if row_space == space else 0
    total = sum(by_language.values())
    return {"roots": roots, "files": sum(r["files"] for r in roots), "chunks": total,
            "by_language": by_language, "space": space, "embedded": embedded,
            "not_embedded": total - embedded}

"""Hybrid search over one table: nearest neighbours by meaning (HNSW, cosine) and full-text
matches (``search_text``), fused by reciprocal rank. When the embedding provider is down
the search is full text alone and says why (:attr:`Found.degraded`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from cca_core.embeddings import Embedder, EmbeddingUnavailable
from cca_core.search import vectors
from cca_core.search.fusion import any_of_words, fuse
from cca_core.search.schemas import SearchModeName

SearchMode = SearchModeName


@dataclass(frozen=True)
class Found:
    rows: list[dict[str, Any]]  # best first; each with ``score`` (fused), ``distance``, ``rank``
    mode: SearchMode  # what was searched: ``full_text`` when vectors were wanted but unavailable
    degraded: str | None = None  # why vectors were not searched
    space: str | None = None  # the vector space searched


@dataclass(frozen=True)
class Target:
    """Where to search: the table, the columns to return (``id`` first), a narrowing
    ``where`` with its parameters."""

    table: str
    columns: str
    where: str = "TRUE"
    params: Mapping[str, Any] = field(default_factory=dict)


def narrowed(table: str, columns: str, conditions: Mapping[str, Any]) -> Target:
    """A target narrowed by the conditions whose value is given: each key is an SQL condition
    on one parameter, ``:value`` (``"tenant = :value"``); a None or empty value leaves it out."""
    where, params = ["TRUE"], {}
    for number, (condition, value) in enumerate(conditions.items()):
        if value is not None and value != [] and value != "":
            where.append(condition.replace(":value", f":p{number}"))
            params[f"p{number}"] = value
    return Target(table, columns, " AND ".join(where), params)


def search(connection: Connection, target: Target, query: str, embedder: Embedder, *,
           limit: int, ef_search: int, mode: SearchMode = "hybrid") -> Found:
    wanted = max(limit * 4, 20)
    by_meaning: list[dict[str, Any]] = []
    degraded = None
    if mode != "full_text":
        try:
            vector = embedder.embed([query])[0]
        except EmbeddingUnavailable as exc:
            degraded = f"vector search unavailable, full text only: {exc}"
        else:
            by_meaning = _nearest(connection, target, embedder.space, vector, wanted, ef_search)
    by_words = _matching(connection, target, query, wanted) if mode != "vector" or degraded else []
    rows: dict[Any, dict[str, Any]] = {}
    for rank, row in enumerate(by_words, start=1):
        rows[row["id"]] = {**row, "rank": rank}
    for row in by_meaning:
        rows[row["id"]] = {**rows.get(row["id"], {}), **row}
    fused = fuse([row["id"] for row in by_meaning], [row["id"] for row in by_words])
    best = [{**rows[key], "score": round(score, 6)} for key, score in fused[:limit]]
    searched: SearchMode = "full_text" if degraded else mode
    return Found(best, searched, degraded, None if degraded or mode == "full_text" else embedder.space)


def _nearest(connection: Connection, target: Target, space: str, vector: list[float],
             wanted: int, ef_search: int) -> list[dict[str, Any]]:
    """By the space's HNSW index; when its candidates thin out under the narrowing (a small
    tenant in a big table), by an exact scan of the narrowed rows instead."""
    params = {**target.params, "query": vectors.as_text(vector)}
    vectors.set_ef_search(connection, max(ef_search, wanted))
    sql = vectors.nearest_sql(target.table, space, len(vector), target.columns, target.where, wanted)
    found = [dict(row._mapping) for row in connection.execute(text(sql), params)]
    if len(found) < wanted:
        sql = vectors.exact_sql(target.table, space, target.columns, target.where, wanted)
        found = [dict(row._mapping) for row in connection.execute(text(sql), params)]
    return found


def _matching(connection: Connection, target: Target, query: str, wanted: int) -> list[dict[str, Any]]:
    terms = any_of_words(query)
    if not terms:
        return []
    sql = (f"SELECT {target.columns} FROM {target.table}, to_tsquery('english', :terms) AS q "
           f"WHERE search_text @@ q AND {target.where} "
           f"ORDER BY ts_rank_cd(search_text, q, 1) DESC LIMIT {int(wanted)}")  # 1: by log length
    params = {**target.params, "terms": terms}
    return [dict(row._mapping) for row in connection.execute(text(sql), params)]

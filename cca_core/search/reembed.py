"""Re-embedding: move every memory and code chunk into the configured vector space, in
batches, then drop the indexes of the spaces left empty. Rows not yet moved are still found
by full text, never compared with vectors of another model.

Backfilling: give the rows stored without a vector (an agent's lesson, a memory stored while
the provider was down) one in the configured space, a batch at a time."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from cca_core.embeddings import Embedder
from cca_core.search import vectors

# table: (the columns a row's text is made of, the text embedded for a row), given by the
# modules that embed those rows in the first place (cca_worker.jobs), so both agree.
Sources = Mapping[str, tuple[str, Callable[[Any], str]]]
Report = Callable[[dict[str, Any]], bool]  # records progress; True = stop (cancelled)


def reembed(engine: Engine, embedder: Embedder, sources: Sources, batch_size: int,
            report: Report) -> tuple[dict[str, Any], bool]:
    space = embedder.space
    progress: dict[str, Any] = {"space": space, **{table: 0 for table in sources},
                                "remaining": _remaining(engine, space, sources),
                                "embedding_seconds": 0.0}
    for table, (columns, text_of) in sources.items():
        while True:
            with engine.begin() as connection:
                rows = connection.execute(text(
                    f"SELECT id, {columns} FROM {table} WHERE space IS DISTINCT FROM "
                    f"{vectors.literal(space)} LIMIT :batch"), {"batch": batch_size}).all()
            if not rows:
                break
            started = time.perf_counter()
            embedded = embedder.embed([text_of(row) for row in rows])
            progress["embedding_seconds"] = round(progress["embedding_seconds"]
                                                  + time.perf_counter() - started, 3)
            with engine.begin() as connection:
                _store(connection, table, space, rows, embedded)
            progress[table] += len(rows)
            progress["remaining"] -= len(rows)
            if report(progress):
                return progress, True
    with engine.begin() as connection:
        progress["dropped_indexes"] = [
            name for table in sources
            for name in vectors.drop_other_indexes(connection, table, space, embedder.dimension)]
    return progress, False


def backfill(engine: Engine, embedder: Embedder, table: str, source: tuple[str, Callable[[Any], str]],
             batch_size: int) -> int:
    """Embed up to ``batch_size`` of the oldest rows of ``table`` without a vector; return how
    many. Rows another process is embedding are skipped (SKIP LOCKED), so workers share the
    work. Raises EmbeddingUnavailable (nothing is written)."""
    columns, text_of = source
    with engine.begin() as connection:
        rows = connection.execute(text(
            f"SELECT id, {columns} FROM {table} WHERE space IS NULL ORDER BY created_at "
            f"LIMIT :batch FOR UPDATE SKIP LOCKED"), {"batch": batch_size}).all()
        if rows:
            _store(connection, table, embedder.space, rows, embedder.embed([text_of(row) for row in rows]))
    return len(rows)


def _store(connection: Connection, table: str, space: str, rows: Sequence[Any],
           embedded: list[list[float]]) -> None:
    vectors.ensure_index(connection, table, space, len(embedded[0]))
    connection.execute(text(
        f"UPDATE {table} SET space = :space, embedding = CAST(:v AS vector) WHERE id = :id"),
        [{"space": space, "v": vectors.as_text(v), "id": row.id}
         for row, v in zip(rows, embedded, strict=True)])


def _remaining(engine: Engine, space: str, sources: Sources) -> int:
    with engine.begin() as connection:
        return sum(connection.execute(text(
            f"SELECT count(*) FROM {table} WHERE space IS DISTINCT FROM {vectors.literal(space)}"
        )).scalar_one() for table in sources)

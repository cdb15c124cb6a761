"""Re-embedding: move every memory and code chunk into the configured vector space, in
batches, then drop the indexes of the spaces left empty. Rows not yet moved are still found
by full text, never compared with vectors of another model."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from cca_core.embeddings import Embedder
from cca_core.search import vectors

TABLES = {
    # table: (what is embedded, as SQL over its row)
    "memories": "content",
    "code_chunks": "path || ' ' || kind || ' ' || coalesce(symbol, '') || E'\\n' || content",
}

Report = Callable[[dict[str, Any]], bool]  # records progress; True = stop (cancelled)


def reembed(engine: Engine, embedder: Embedder, batch_size: int,
            report: Report) -> tuple[dict[str, Any], bool]:
    space = embedder.space
    progress: dict[str, Any] = {"space": space, "memories": 0, "code_chunks": 0,
                                "remaining": _remaining(engine, space), "embedding_seconds": 0.0}
    for table, source in TABLES.items():
        while True:
            with engine.begin() as connection:
                rows = connection.execute(text(
                    f"SELECT id, {source} AS body FROM {table} WHERE space IS DISTINCT FROM "
                    f"{vectors.literal(space)} LIMIT :batch"), {"batch": batch_size}).all()
            if not rows:
                break
            started = time.perf_counter()
            embedded = embedder.embed([row.body for row in rows])
            progress["embedding_seconds"] = round(progress["embedding_seconds"]
                                                  + time.perf_counter() - started, 3)
            with engine.begin() as connection:
                vectors.ensure_index(connection, table, space, len(embedded[0]))
                connection.execute(text(
                    f"UPDATE {table} SET space = :space, embedding = CAST(:v AS vector) WHERE id = :id"),
                    [{"space": space, "v": vectors.as_text(v), "id": row.id}
                     for row, v in zip(rows, embedded, strict=True)])
            progress[table] += len(rows)
            progress["remaining"] -= len(rows)
            if report(progress):
                return progress, True
    with engine.begin() as connection:
        progress["dropped_indexes"] = [
            name for table in TABLES
            for name in vectors.drop_other_indexes(connection, table, space, embedder.dimension)]
    return progress, False


def _remaining(engine: Engine, space: str) -> int:
    with engine.begin() as connection:
        return sum(connection.execute(text(
            f"SELECT count(*) FROM {table} WHERE space IS DISTINCT FROM {vectors.literal(space)}"
        )).scalar_one() for table in TABLES)

"""Re-embedding: move every memory and code chunk into the configured vector space, in
batches, then drop the indexes of the spaces left empty. Rows not yet moved are still found
by full text, never compared with vectors of another model."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

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
            name for table in sources
            for name in vectors.drop_other_indexes(connection, table, space, embedder.dimension)]
    return progress, False


def _remaining(engine: Engine, space: str, sources: Sources) -> int:
    with engine.begin() as connection:
        return sum(connection.execute(text(
            f"SELECT count(*) FROM {table} WHERE space IS DISTINCT FROM {vectors.literal(space)}"
        )).scalar_one() for table in sources)

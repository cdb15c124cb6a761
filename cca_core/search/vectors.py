"""Vectors in Postgres: one partial HNSW index (cosine) per table and vector space, made when
the first vector of the space is written; nearest-neighbour queries that use it.

Rows keep their space's name (``space``) beside an untyped ``vector``; the index is on
``embedding::vector(N)`` where ``space = '<space>'``, so vectors of different models are never
compared, and a model switch (``cca memory reembed``) builds the new index beside the old.
The space is written into the SQL as a literal (validated below): a partial index is only
used when the planner can see the literal.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection

_SPACE = re.compile(r"^[A-Za-z0-9._:/@-]{1,200}$")
_TABLES = frozenset({"memories", "code_chunks"})
_known: set[tuple[str, str, int]] = set()


def literal(space: str) -> str:
    """The space as an SQL string literal. Raises ValueError for a name outside the pattern
    (settings validate model names with the same characters)."""
    if not _SPACE.match(space):
        raise ValueError(f"not a vector space name: {space!r}")
    return f"'{space}'"


def index_name(table: str, space: str, dimension: int) -> str:
    digest = hashlib.sha1(f"{space}/{dimension}".encode()).hexdigest()[:10]
    return f"{table}_hnsw_{digest}"


def ensure_index(connection: Connection, table: str, space: str, dimension: int) -> None:
    """Create the table's HNSW index for ``space`` unless it exists (once per process)."""
    if table not in _TABLES:
        raise ValueError(f"no vectors in {table}")
    if (table, space, dimension) in _known:
        return
    name = index_name(table, space, dimension)
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
    connection.execute(text(
        f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING hnsw "
        f"((embedding::vector({int(dimension)})) vector_cosine_ops) WHERE space = {literal(space)}"))
    _known.add((table, space, dimension))


def as_text(vector: Sequence[float]) -> str:
    """pgvector's text form, for a bound parameter cast to ``vector``."""
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


def nearest_sql(table: str, space: str, dimension: int, columns: str, where: str,
                limit: int) -> str:
    """The ``limit`` rows of ``space`` nearest ``:query`` (by cosine distance, as
    ``distance``), using its HNSW index; ``where`` narrows (tenant, language...).

    The limit is part of the text, not a parameter: once psycopg prepares a statement run
    often, Postgres may switch to a generic plan, and with an unknown LIMIT that plan is a
    scan and sort of every row (measured: 125 ms instead of 1 ms at 10^5 rows)."""
    cast = f"vector({int(dimension)})"
    return (f"SELECT {columns}, embedding::{cast} <=> CAST(:query AS {cast}) AS distance "
            f"FROM {table} WHERE space = {literal(space)} AND {where} "
            f"ORDER BY embedding::{cast} <=> CAST(:query AS {cast}) LIMIT {int(limit)}")


def exact_sql(table: str, space: str, columns: str, where: str, limit: int) -> str:
    """As :func:`nearest_sql`, by a scan of every row (no index): for a few rows, or to
    measure the index's recall."""
    return (f"SELECT {columns}, embedding <=> CAST(:query AS vector) AS distance "
            f"FROM {table} WHERE space = {literal(space)} AND {where} "
            f"ORDER BY distance LIMIT {int(limit)}")


def set_ef_search(connection: Connection, ef_search: int) -> None:
    """Candidates the HNSW scan keeps for this transaction (pgvector's ``hnsw.ef_search``)."""
    connection.execute(text(f"SET LOCAL hnsw.ef_search = {int(ef_search)}"))


def drop_other_indexes(connection: Connection, table: str, space: str, dimension: int) -> list[str]:
    """After a re-embedding into ``space``: drop the table's HNSW indexes of other spaces
    (no row is in them any more). Returns their names."""
    keep = index_name(table, space, dimension)
    names = connection.execute(text(
        "SELECT indexname FROM pg_indexes WHERE tablename = :table AND indexname LIKE :pattern "
        "AND indexname <> :keep"), {"table": table, "pattern": f"{table}_hnsw_%", "keep": keep})
    dropped = [row.indexname for row in names]
    for name in dropped:
        connection.execute(text(f'DROP INDEX IF EXISTS "{name}"'))
    _known.difference_update({entry for entry in _known if entry[0] == table})
    return dropped

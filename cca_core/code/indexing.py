"""Index a tree: walk it, skip what is unchanged since the last run (content hash), cut
what changed into chunks, embed them in batches, replace the file's chunks, remove the files
that are gone. Reports progress and stops between batches when cancelled."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import Connection, Engine

from cca_core.code.chunking import Chunk, chunk_file, language_of
from cca_core.embeddings import Embedder, EmbeddingUnavailable
from cca_core.models import CodeFile
from cca_core.search import vectors
from cca_core.search.fusion import words
from cca_core.settings import CodeSettings

MAX_ERROR_SAMPLES = 10
REPORT_EVERY_S = 0.5


@dataclass(frozen=True)
class Tree:
    tenant: str
    root: Path  # resolved, inside the allowed roots (checked by the caller)
    extensions: tuple[str, ...]
    excludes: tuple[str, ...]


@dataclass
class Progress:
    files_total: int = 0
    files_done: int = 0
    files_indexed: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    chunks: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    embedding_seconds: float = 0.0
    degraded: str | None = None

    def failed(self, path: str, why: str) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(f"{path}: {why}")

    def as_dict(self) -> dict[str, Any]:
        percent = 100.0 if not self.files_total else round(100 * self.files_done / self.files_total, 1)
        return {**self.__dict__, "embedding_seconds": round(self.embedding_seconds, 3),
                "percent": percent}


@dataclass
class _Pending:
    path: str
    language: str | None
    digest: str
    chunks: list[Chunk]


Report = Callable[[Progress], bool]  # records progress; True = stop (cancelled)


def index_tree(engine: Engine, embedder: Embedder, tree: Tree, settings: CodeSettings,
               batch_size: int, report: Report) -> tuple[Progress, bool]:
    """Index ``tree``; returns the progress and whether it was cancelled."""
    progress = Progress()
    paths = list(_files(tree, settings))
    progress.files_total = len(paths)
    with engine.begin() as connection:
        known = _known_hashes(connection, tree)
        gone = sorted(set(known) - set(paths))
        connection.execute(delete(CodeFile).where(CodeFile.tenant == tree.tenant,
                                                  CodeFile.root == str(tree.root),
                                                  CodeFile.path.in_(gone)))
        progress.files_deleted = len(gone)
    pending: list[_Pending] = []
    last_report = time.monotonic()
    for path in paths:
        item = _read(tree.root / path, path, known.get(path), settings, progress)
        if item is not None:
            pending.append(item)
        else:
            progress.files_done += 1
        if sum(len(p.chunks) for p in pending) >= batch_size:
            _write(engine, embedder, tree, pending, progress)
            pending = []
        if time.monotonic() - last_report >= REPORT_EVERY_S:
            last_report = time.monotonic()
            if report(progress):
                return progress, True
    _write(engine, embedder, tree, pending, progress)
    return progress, report(progress)


def _files(tree: Tree, settings: CodeSettings) -> Iterator[str]:
    """Relative paths of the files to index, sorted, within ``max_files``."""
    found = 0
    for directory, subdirs, names in os.walk(tree.root):
        relative_dir = os.path.relpath(directory, tree.root)
        subdirs[:] = sorted(name for name in subdirs if not _excluded(
            os.path.normpath(os.path.join(relative_dir, name)), name, tree.excludes))
        for name in sorted(names):
            relative = os.path.normpath(os.path.join(relative_dir, name))
            full = os.path.join(directory, name)
            if (not name.endswith(tree.extensions) or _excluded(relative, name, tree.excludes)
                    or os.path.islink(full)):
                continue
            found += 1
            if found > settings.max_files:
                return
            yield relative


def _excluded(relative: str, name: str, excludes: tuple[str, ...]) -> bool:
    return any(name == pattern or fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(name, pattern)
               for pattern in excludes)


def _known_hashes(connection: Connection, tree: Tree) -> dict[str, str]:
    rows = connection.execute(select(CodeFile.path, CodeFile.content_hash).where(
        CodeFile.tenant == tree.tenant, CodeFile.root == str(tree.root)))
    return {row.path: row.content_hash for row in rows}


def _read(full: Path, path: str, known_hash: str | None, settings: CodeSettings,
          progress: Progress) -> _Pending | None:
    try:
        if full.stat().st_size > settings.max_file_bytes:
            progress.failed(path, f"over {settings.max_file_bytes} bytes (code.max_file_bytes)")
            return None
        raw = full.read_bytes()
    except OSError as exc:
        progress.failed(path, exc.strerror or type(exc).__name__)
        return None
    digest = hashlib.sha256(raw).hexdigest()
    if digest == known_hash:
        progress.files_unchanged += 1
        return None
    try:
        source = raw.decode()
    except UnicodeDecodeError:
        progress.failed(path, "not UTF-8 text")
        return None
    language = language_of(path)
    return _Pending(path, language, digest, chunk_file(source, language, settings.window_lines))


def embedding_text(path: str, kind: str, symbol: str | None, content: str) -> str:
    """What is embedded for a chunk: where it is and what it is named, then its text (the
    same when ``cca memory reembed`` moves it to another model)."""
    return f"{path} {kind} {symbol or ''}\n{content}"


def _write(engine: Engine, embedder: Embedder, tree: Tree, pending: list[_Pending],
           progress: Progress) -> None:
    if not pending:
        return
    texts = [embedding_text(item.path, chunk.kind, chunk.symbol, chunk.content)
             for item in pending for chunk in item.chunks]
    embedded: list[list[float]] | None = None
    if not progress.degraded:
        started = time.perf_counter()
        try:
            embedded = embedder.embed(texts) if texts else []
        except EmbeddingUnavailable as exc:
            progress.degraded = f"chunks stored without vectors (full text only): {exc}"
        progress.embedding_seconds += time.perf_counter() - started
    vectors_left = iter(embedded or [])
    with engine.begin() as connection:
        if embedded:
            vectors.ensure_index(connection, "code_chunks", embedder.space, len(embedded[0]))
        for item in pending:
            _replace_file(connection, tree, item, embedder.space if embedded is not None else None,
                          [next(vectors_left) if embedded is not None else None for _ in item.chunks])
            progress.files_done += 1
            progress.files_indexed += 1
            progress.chunks += len(item.chunks)


def _replace_file(connection: Connection, tree: Tree, item: _Pending, space: str | None,
                  embedded: list[list[float] | None]) -> None:
    key = {"tenant": tree.tenant, "root": str(tree.root), "path": item.path}
    connection.execute(delete(CodeFile).where(CodeFile.tenant == tree.tenant,
                                              CodeFile.root == str(tree.root),
                                              CodeFile.path == item.path))
    connection.execute(insert(CodeFile).values(
        **key, language=item.language, content_hash=item.digest, chunks=len(item.chunks)))
    if not item.chunks:
        return
    connection.execute(text(
        "INSERT INTO code_chunks (tenant, root, path, language, symbol, kind, start_line, "
        "end_line, content, space, embedding, search_text) VALUES (:tenant, :root, :path, "
        ":language, :symbol, :kind, :start_line, :end_line, :content, :space, "
        "CAST(:embedding AS vector), to_tsvector('english', :words))"), [
        {**key, "language": item.language, "symbol": chunk.symbol, "kind": chunk.kind,
         "start_line": chunk.start_line, "end_line": chunk.end_line, "content": chunk.content,
         "space": space if vector is not None else None,
         "embedding": vectors.as_text(vector) if vector is not None else None,
         "words": words(f"{item.path} {chunk.symbol or ''} {chunk.content}")}
        for chunk, vector in zip(item.chunks, embedded, strict=True)])

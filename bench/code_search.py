"""(f) Code search: indexing throughput, search latency at scale, HNSW recall, quality.

* Indexing: this repository's Python at HEAD (``git archive``) indexed with the local model,
  against the same with ``embeddings.provider = "none"`` (chunking and writing alone): files/s
  and chunks/s, embedding time shown apart.
* Latency: ``--quick`` 10^4 chunks, default 10^4 and 10^5, of synthetic 384-dimensional vectors
  clustered like real embeddings (points scattered around 1,000 centres; uniform random
  vectors are HNSW's worst case, not what models give), each with words for full text. p50
  and p99 of vector and hybrid searches through cca's own search path, against an exact scan
  of the same rows (no index) as the baseline.
* Recall: the HNSW top 10 against the exact top 10, at ef_search 40, 100 (the default) and 200.
* Quality: the labelled queries (tests/data/code_search_queries.yaml), recall@5 and MRR of
  hybrid against vector-only and full-text-only.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import text

from bench.plan import Counts
from bench.report import Row, Section, latency_row, ms, percentile, rate_row
from bench.servers import Bench
from cca_core.code.indexing import Tree, index_tree
from cca_core.code.search import search_code
from cca_core.embeddings.providers import embedder_for
from cca_core.search import vectors
from cca_core.settings import CodeSettings, EmbeddingSettings
from tests.support.code_quality import REPO, pinned_tree, scores

DIMENSION = 384
CENTRES = 1000
SPACE = "bench/synthetic-{size}"  # a space (so an index) per scale, built after the load
LATENCY_TARGET_MS = 30.0
RECALL_TARGET = 0.95


class Synthetic:
    """The bench's stand-in embedder: query vectors drawn like the stored ones."""

    dimension = DIMENSION

    def __init__(self, space: str, centres: np.ndarray, rng: np.random.Generator) -> None:
        self.space, self.centres, self.rng = space, centres, rng

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [clustered(self.centres, self.rng, 1)[0].tolist() for _ in texts]


def clustered(centres: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """Points around random centres, unit length (cosine to their centre about 0.8)."""
    picks = centres[rng.integers(0, len(centres), count)]
    points = picks + rng.normal(0, 0.75 / np.sqrt(DIMENSION), (count, DIMENSION))
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def measure(bench: Bench, counts: Counts) -> Section:
    section = Section()
    _indexing(bench, section)
    for size in counts.search_scales:
        _scale(bench, section, size, counts.search_queries)
    _quality(bench, section)
    return section


def _indexing(bench: Bench, section: Section) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD", "cca_core", "cca_api",
                                  "cca_worker", "cca_cli", "cca_mcp", "tests"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", scratch], input=archive, check=True)
        runs = {}
        for provider in ("local", "none"):
            tree = Tree(f"index-{provider}", root, (".py",), tuple(CodeSettings().excludes))
            embedder = embedder_for(EmbeddingSettings(provider=provider))
            if provider == "local":
                embedder.embed(["load the model before the clock starts"])
            started = time.perf_counter()
            progress, _ = index_tree(bench.engine, embedder, tree, CodeSettings(), 32, lambda _: False)
            runs[provider] = (time.perf_counter() - started, progress)
    (elapsed, progress), (bare, _) = runs["local"], runs["none"]
    section.rows += [
        rate_row("(f) index files/s (local model)", progress.files_indexed / elapsed,
                 progress.files_indexed / bare),
        rate_row("(f) index chunks/s (local model)", progress.chunks / elapsed, progress.chunks / bare),
    ]
    section.notes.append(
        f"(f) indexing: {progress.files_indexed} files, {progress.chunks} chunks in {elapsed:.1f} s; "
        f"embedding {progress.embedding_seconds:.1f} s of it "
        f"({progress.chunks / progress.embedding_seconds:.1f} chunks/s); without vectors (baseline) "
        f"{bare:.1f} s")


def _scale(bench: Bench, section: Section, size: int, queries: int) -> None:
    rng = np.random.default_rng(size)
    centres = rng.normal(0, 1, (CENTRES, DIMENSION))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    tenant, space = f"scale-{size}", SPACE.format(size=size)
    started = time.perf_counter()
    _load(bench, tenant, space, clustered(centres, rng, size), rng)
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    with bench.engine.begin() as connection:
        connection.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
        vectors.ensure_index(connection, "code_chunks", space, DIMENSION)
        connection.execute(text("ANALYZE code_chunks"))
    built = time.perf_counter() - started
    embedder = Synthetic(space, centres, rng)
    timings: dict[str, list[float]] = {"vector": [], "hybrid": [], "exact": []}
    recall: dict[int, list[float]] = {40: [], 100: [], 200: []}
    with bench.engine.begin() as connection:
        for number in range(queries):
            word = f"w{rng.integers(0, 2000)}"
            for mode in ("vector", "hybrid"):
                began = time.perf_counter()
                search_code(connection, embedder, word, tenant=tenant, limit=10, ef_search=100,
                            mode=mode)  # type: ignore[arg-type]
                timings[mode].append(time.perf_counter() - began)
            if number < 100:
                query = vectors.as_text(embedder.embed(["q"])[0])
                began = time.perf_counter()
                exact = _ids(connection, vectors.exact_sql("code_chunks", space, "id",
                                                            "tenant = :tenant", 10), query, tenant)
                timings["exact"].append(time.perf_counter() - began)
                for ef in recall:
                    vectors.set_ef_search(connection, ef)
                    approx = _ids(connection, vectors.nearest_sql(
                        "code_chunks", space, DIMENSION, "id", "tenant = :tenant", 10), query, tenant)
                    recall[ef].append(len(approx & exact) / len(exact))
    label = f"10^{len(str(size)) - 1}"
    p50 = {mode: ms(percentile(values, 50)) for mode, values in timings.items()}
    p99 = {mode: ms(percentile(values, 99)) for mode, values in timings.items()}
    hnsw_recall = float(np.mean(recall[100]))
    section.rows += [
        _under(f"(f) vector search p50 ms @{label} chunks", p50["vector"], p50["exact"]),
        latency_row(f"(f) vector search p99 ms @{label} chunks", p99["vector"], p99["exact"]),
        _under(f"(f) hybrid search p50 ms @{label} chunks", p50["hybrid"], p50["exact"]),
        latency_row(f"(f) hybrid search p99 ms @{label} chunks", p99["hybrid"], p99["exact"]),
        Row(f"(f) HNSW recall@10 @{label}, ef_search 100", hnsw_recall, 1.0, f"{hnsw_recall:.3f}",
            f">= {RECALL_TARGET}", hnsw_recall >= RECALL_TARGET),
    ]
    section.notes.append(
        f"(f) {size} synthetic chunks: loaded in {loaded:.1f} s, HNSW built in {built:.1f} s; "
        f"recall@10 by ef_search: " + ", ".join(f"{ef}: {np.mean(v):.3f}" for ef, v in recall.items())
        + f"; exact scan p50 {p50['exact']:.1f} ms (the baseline)")


def _under(measure: str, cca: float, baseline: float) -> Row:
    ratio = f"{cca / baseline:.2f}x" if baseline else "-"
    return Row(measure, cca, baseline, ratio, f"<= {LATENCY_TARGET_MS:g} ms", cca <= LATENCY_TARGET_MS)


def _ids(connection, sql: str, query: str, tenant: str) -> set[int]:  # type: ignore[no-untyped-def]
    rows = connection.execute(text(sql), {"query": query, "tenant": tenant})
    return {row.id for row in rows}


def _load(bench: Bench, tenant: str, space: str, points: np.ndarray,
          rng: np.random.Generator) -> None:
    """COPY the points in, 100 chunks to a file, each with eight words of a 2,000-word vocabulary."""
    files = io.StringIO()
    for number in range(0, len(points), 100):
        files.write(f"{tenant}\t/bench\tf{number}.py\tpython\tx\t1\n")
    chunks = io.StringIO()
    for number, point in enumerate(points):
        words = " ".join(f"'w{w}'" for w in rng.integers(0, 2000, 8))
        vector = "[" + ",".join(f"{x:.4f}" for x in point) + "]"
        chunks.write(f"{tenant}\t/bench\tf{number // 100 * 100}.py\tpython\tfn{number}\tfunction\t1\t9\t"
                     f"synthetic chunk {number}\t{space}\t{vector}\t{words}\n")
    raw = bench.engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy("COPY code_files (tenant, root, path, language, content_hash, chunks) "
                         "FROM STDIN") as copy:
            copy.write(files.getvalue())
        with cursor.copy("COPY code_chunks (tenant, root, path, language, symbol, kind, start_line, "
                         "end_line, content, space, embedding, search_text) FROM STDIN") as copy:
            copy.write(chunks.getvalue())
        raw.commit()
    finally:
        raw.close()


def _quality(bench: Bench, section: Section) -> None:
    embedder = embedder_for(EmbeddingSettings())
    with tempfile.TemporaryDirectory() as scratch:
        tree = Tree("quality", pinned_tree(Path(scratch)), (".py",), tuple(CodeSettings().excludes))
        index_tree(bench.engine, embedder, tree, CodeSettings(), 32, lambda _: False)
    with bench.engine.begin() as connection:
        found = scores(connection, embedder, "quality")
    hybrid, vector, words = found["hybrid"], found["vector"], found["full_text"]
    section.rows += [
        Row("(f) labelled set recall@5: hybrid vs vector", hybrid[0], vector[0],
            f"{hybrid[0] / vector[0]:.2f}", ">= 0.8", hybrid[0] >= 0.8),
        Row("(f) labelled set MRR: hybrid vs vector", hybrid[1], vector[1], f"{hybrid[1] / vector[1]:.2f}"),
    ]
    section.notes.append(
        "(f) labelled set (recall@5 / MRR): " + ", ".join(
            f"{mode} {r:.3f} / {m:.3f}" for mode, (r, m) in (("hybrid", hybrid), ("vector", vector),
                                                              ("full text", words))))

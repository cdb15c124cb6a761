"""The labelled code-search set (tests/data/code_search_queries.yaml) and how it is scored:
shared by its test and by bench/code_search.py."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import Connection

from cca_core.code.search import search_code
from cca_core.embeddings import Embedder
from cca_core.search.hybrid import SearchMode
from cca_core.search.quality import mean_reciprocal_rank, rank_of, recall_at

REPO = Path(__file__).resolve().parents[2]
LABELS: dict[str, Any] = yaml.safe_load((REPO / "tests/data/code_search_queries.yaml").read_text())
MODES: tuple[SearchMode, ...] = ("vector", "full_text", "hybrid")


def pinned_tree(into: Path) -> Path:
    """Extract the labelled tree at its pinned commit into ``into``. Raises RuntimeError
    when this clone lacks the commit (a shallow clone)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", LABELS["commit"], LABELS["tree"]],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        raise RuntimeError(f"commit {LABELS['commit']} is not in this clone "
                           f"({archive.stderr.decode().strip()}): the labelled set needs the "
                           "repository's history (git fetch --unshallow)")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def scores(connection: Connection, embedder: Embedder, tenant: str,
           ef_search: int = 100) -> dict[str, tuple[float, float]]:
    """(recall@5, MRR) of each search mode on the labelled queries."""
    found = {}
    for mode in MODES:
        ranks = [rank_of(search_code(connection, embedder, item["query"], tenant=tenant, limit=10,
                                     ef_search=ef_search, mode=mode).rows,
                         item["path"], item["symbol"])
                 for item in LABELS["queries"]]
        found[mode] = (recall_at(ranks, 5), mean_reciprocal_rank(ranks))
    return found

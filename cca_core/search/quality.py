"""Search quality on a labelled set (pure): where each answer ranked, recall@k and MRR."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def rank_of(rows: Sequence[dict[str, Any]], path: str, symbol: str) -> int | None:
    """The 1-based rank of the chunk ``symbol`` of ``path`` among ``rows``, if there."""
    for rank, row in enumerate(rows, start=1):
        if row["path"] == path and row["symbol"] == symbol:
            return rank
    return None


def recall_at(ranks: Sequence[int | None], k: int) -> float:
    return sum(1 for rank in ranks if rank is not None and rank <= k) / len(ranks)


def mean_reciprocal_rank(ranks: Sequence[int | None]) -> float:
    return sum(1 / rank for rank in ranks if rank is not None) / len(ranks)

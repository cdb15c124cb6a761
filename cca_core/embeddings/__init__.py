"""Embeddings: text in, vectors out, behind one small interface (:class:`Embedder`).

Providers: ``local`` (in-process, :mod:`.local`), ``ollama`` and ``openai`` (HTTP,
:mod:`.remote`). A vector space is named by its provider and model (:attr:`Embedder.space`);
vectors of different spaces are never compared (cca_core.search keeps one HNSW index each).
"""

from __future__ import annotations

from typing import Protocol


class EmbeddingUnavailable(Exception):
    """The provider cannot embed now (down, timing out, misconfigured): search falls back to
    full text and says why."""


class Embedder(Protocol):
    @property
    def space(self) -> str:
        """The vector space, e.g. ``local/all-MiniLM-L6-v2``: vectors are comparable only
        within one."""

    @property
    def dimension(self) -> int:
        """The length of every vector this embedder gives."""

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order. Raises EmbeddingUnavailable."""

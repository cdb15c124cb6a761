"""A fake OpenTelemetry collector for tests: accepts OTLP over HTTP with JSON bodies
(``OTEL_EXPORTER_OTLP_PROTOCOL=http/json``) at ``/v1/metrics``, ``/v1/logs`` and
``/v1/traces``, and keeps what it received."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Collector:
    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.collector = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Collector:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def resource_attributes(self) -> list[dict[str, Any]]:
        """The resource attributes of everything received, one dict per resource."""
        with self._lock:
            bodies = [body for _, body in self.received]
        found = []
        for body in bodies:
            for key in ("resourceMetrics", "resourceLogs", "resourceSpans"):
                for item in body.get(key) or []:
                    attributes = (item.get("resource") or {}).get("attributes") or []
                    found.append({a["key"]: next(iter((a.get("value") or {}).values()), None)
                                  for a in attributes})
        return found

    def record(self, path: str, body: dict[str, Any]) -> None:
        with self._lock:
            self.received.append((path, body))


class _Handler(BaseHTTPRequestHandler):
    def _body(self) -> bytes:
        """The request body, de-chunked and decompressed (the CLI's exporter gzips)."""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            raw = b""
            while size := int(self.rfile.readline().strip() or b"0", 16):
                raw += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        return gzip.decompress(raw) if self.headers.get("content-encoding") == "gzip" else raw

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:
        raw = self._body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"unparsed_bytes": len(raw)}
        self.server.collector.record(self.path, body)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

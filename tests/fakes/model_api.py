"""A scripted fake of Anthropic's ``POST /v1/messages`` for end-to-end tests of the real CLI.

The script comes from the prompt: the first user message of a request must contain
``[[script:{"steps": [...]}]]``. The step answered is chosen by how many ``assistant`` messages
the request already holds (0 -> steps[0], ...); past the end the reply is the text "done".
Only a request whose first user message has the marker *and* whose body has a non-empty
``tools`` list is a "main" request. Every other request (the CLI's session-title request,
subagents, anything without the marker) is a side request and gets a short text reply
without touching the script.

Step kinds; optional keys on any step: ``usage``, ``delay`` (seconds between SSE events),
``times``/``then`` (the first ``times`` requests on this step index get the step, later
ones get the step ``then``; the count lives in the server, keyed by script text and index)::

    {"text": "saw {tool_result}"}            # end_turn; {tool_result}: last tool_result text
                                             # (tool inputs may say "{tool_result}", or
                                             # "{tool_result.KEY}": KEY of
                                             # the last tool result read as JSON)
    {"tool_use": {"name": "Bash", "input": {...}}, "text": "optional text block first"}
    {"error": 429, "retry_after": 1}         # HTTP error with the Anthropic error body
    {"error": 429, "headers": {"anthropic-ratelimit-requests-reset": "…"}}  # and these headers
    {"error": 529, "times": 2, "then": {"text": "ok"}}
    {"stall": 60}                            # headers + message_start, silence, then hang up

An account's limits, per API key (``ModelAPI(keys={"key": KeyLimits(...)})``; any other key
is then a 401): ``max_concurrent`` requests in flight at once (more get a 429 and count in
``refused_concurrency``), and a usage ``window``: the key's request after its first
``after_requests`` closes it for ``seconds`` (requests meanwhile get a 429 with
``retry-after`` and ``anthropic-ratelimit-requests-*`` headers; ``refused_window`` counts them,
``window_resets`` holds when it opens again).

Run as a script (``--port 0 [--log FILE]``; prints ``listening on http://127.0.0.1:PORT``)
or import :class:`ModelAPI`.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import signal
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MARKER = "[[script:"
DEFAULT_USAGE = {
    "input_tokens": 100,
    "output_tokens": 20,
    "cache_read_input_tokens": 0,
    "cache_creation_input_tokens": 0,
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
SIDE_REPLY = "Title"
CHUNK = 40  # characters per text_delta / input_json_delta


def text_blocks(content: Any) -> list[str]:
    """The texts of a message ``content`` (a string or a list of blocks)."""
    if isinstance(content, str):
        return [content]
    return [
        b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"
    ]


def find_script(body: dict[str, Any]) -> str | None:
    """The raw JSON text of the ``[[script:...]]`` marker in ``messages[0]``, or None."""
    messages = body.get("messages") or []
    if not messages:
        return None
    for text in text_blocks(messages[0].get("content")):
        start = text.find(MARKER)
        if start >= 0:
            begin = start + len(MARKER)
            end = text.find("]]", begin)
            try:  # raw_decode copes with "]]" inside JSON strings
                _, stop = json.JSONDecoder().raw_decode(text, begin)
                return text[begin:stop]
            except ValueError:
                return text[begin : end if end >= 0 else len(text)]
    return None


def parse_steps(raw: str) -> list[dict[str, Any]]:
    """The step list of a script: ``{"steps": [...]}`` (a bare list is accepted too)."""
    data = json.loads(raw)
    steps = data.get("steps") if isinstance(data, dict) else data
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        raise ValueError('script must be {"steps": [{...}, ...]}')
    return steps


def last_tool_result(body: dict[str, Any]) -> str:
    """The text of the last ``tool_result`` block in the request ("" if none)."""
    found = ""
    for message in body.get("messages") or []:
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                found = "\n".join(text_blocks(block.get("content")))
    return found


def fill_from_result(value: Any, result: str) -> Any:
    """Replace ``"{tool_result.KEY}"`` strings in a tool input with KEY of the last tool
    result parsed as JSON (MCP tools answer JSON), so a script can pass an id it was given,
    and ``{tool_result}`` inside a string with the last result's text (a path it printed)."""
    if isinstance(value, dict):
        return {key: fill_from_result(item, result) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_from_result(item, result) for item in value]
    if isinstance(value, str) and "{tool_result}" in value:
        return value.replace("{tool_result}", result.strip())
    if isinstance(value, str) and value.startswith("{tool_result.") and value.endswith("}"):
        try:
            return json.loads(result)[value[len("{tool_result."):-1]]
        except (ValueError, KeyError, TypeError):
            return value
    return value


def side_reply(body: dict[str, Any], default: str) -> str:
    """The reply text of a side request: JSON when ``output_config.format`` asks for a schema (the
    session-title request wants ``{"title": ...}``), else ``default``."""
    fmt = (body.get("output_config") or {}).get("format") or {}
    if fmt.get("type") != "json_schema":
        return default
    props = (fmt.get("schema") or {}).get("properties") or {}
    return json.dumps({k: SIDE_REPLY for k, v in props.items() if v.get("type") == "string"})


def stall_seconds(step: dict[str, Any]) -> float | None:
    """How long a ``stall`` step stays silent (None: not a stall; null/true: 3600 s)."""
    if "stall" not in step:
        return None
    value = step["stall"]
    return 3600.0 if value is None or isinstance(value, bool) else float(value)


def error_body(status: int) -> dict[str, Any]:
    """The Anthropic error JSON for an HTTP status."""
    kind = ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": f"scripted {kind}"}}


@dataclass(frozen=True)
class Window:
    after_requests: int
    seconds: float


@dataclass(frozen=True)
class KeyLimits:
    max_concurrent: int | None = None
    window: Window | None = None


class ModelAPI:
    """The fake API server: ``url = api.start()``, ``api.stop()``, or ``with ModelAPI() as api``.

    ``requests`` holds every request body received, ``records`` the matching log records.
    """

    def __init__(self, log_path: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 keys: dict[str, KeyLimits] | None = None) -> None:
        self.log_path, self.host, self.port = log_path, host, port
        self.keys = keys
        self.refused_concurrency: dict[str, int] = {}
        self.refused_window: dict[str, int] = {}
        self.window_resets: dict[str, float] = {}
        self._in_flight: dict[str, int] = {}
        self._key_requests: dict[str, int] = {}
        self.requests: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []
        self.url = ""  # set by start()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._failures: dict[tuple[str, int], int] = {}
        self._conns: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Serve in a background thread; returns the base URL (``http://127.0.0.1:PORT``)."""
        server = self._server = _Server((self.host, self.port), _Handler)
        server.api = self
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="model-api", daemon=True
        )
        self._thread.start()
        self.url = f"http://{self.host}:{server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        """Stop: end stalls and delays, hang up open connections, join all handler threads."""
        if self._server is None:
            return
        self.stopping.set()
        self._server.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            _hang_up(conn)
        self._server.server_close()
        if self._thread:
            self._thread.join()
        self._server = None

    def __enter__(self) -> ModelAPI:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def admit(self, key: str) -> tuple[int, str, dict[str, str]] | None:
        """Let a request of ``key`` in (None; then :meth:`leave` when it is answered) or
        refuse it: ``(status, message, headers)``."""
        if self.keys is None:
            return None
        limits = self.keys.get(key)
        if limits is None:
            return 401, "invalid x-api-key", {}
        now = time.time()
        with self._lock:
            seen = self._key_requests[key] = self._key_requests.get(key, 0) + 1
            window = limits.window
            if window is not None and seen == window.after_requests + 1:
                self.window_resets[key] = now + window.seconds
            reset = self.window_resets.get(key, 0.0)
            if reset > now:
                self.refused_window[key] = self.refused_window.get(key, 0) + 1
                when = datetime.fromtimestamp(reset, UTC).isoformat().replace("+00:00", "Z")
                return 429, "usage window exhausted", {
                    "retry-after": str(max(1, round(reset - now))),
                    "anthropic-ratelimit-requests-limit": str(window.after_requests if window else 0),
                    "anthropic-ratelimit-requests-remaining": "0",
                    "anthropic-ratelimit-requests-reset": when}
            if limits.max_concurrent is not None and self._in_flight.get(key, 0) >= limits.max_concurrent:
                self.refused_concurrency[key] = self.refused_concurrency.get(key, 0) + 1
                return 429, "Number of concurrent connections has exceeded your rate limit", {}
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
        return None

    def leave(self, key: str) -> None:
        if self.keys is not None:
            with self._lock:
                self._in_flight[key] -= 1

    def next_id(self) -> int:
        """A number unique within this server (for msg/toolu/req ids)."""
        with self._lock:
            return next(self._ids)

    def track(self, conn: socket.socket, add: bool) -> None:
        """Remember or forget an open client connection (hung up at once when stopping)."""
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)
        if add and self.stopping.is_set():
            _hang_up(conn)

    def choose(self, body: dict[str, Any]) -> tuple[bool, int | None, dict[str, Any]]:
        """Classify a request and pick its reply: ``(main, step_index, step)``."""
        raw = find_script(body)
        if raw is None or not body.get("tools"):
            return False, None, {"text": side_reply(body, SIDE_REPLY if raw is not None else "ok")}
        try:
            steps = parse_steps(raw)
        except ValueError as exc:
            return True, None, {"error": 400, "message": f"bad script: {exc}"}
        index = sum(1 for m in body.get("messages") or [] if m.get("role") == "assistant")
        step: dict[str, Any] = steps[index] if index < len(steps) else {"text": "done"}
        if "times" in step:
            with self._lock:
                used = self._failures.get((raw, index), 0)
                self._failures[(raw, index)] = used + 1
            if used >= int(step["times"]):
                step = step.get("then", {"text": "ok"})
        return True, index, step

    def record(
        self, path: str, body: dict[str, Any], main: bool, index: int | None, step: dict[str, Any],
        key: str = "",
    ) -> None:
        """Keep the request in memory and append its JSON line to the log file."""
        reply = next((k for k in ("error", "stall", "tool_use") if k in step), "text")
        rec = {
            "time": time.time(),
            "key": key,
            "path": path,
            "model": body.get("model"),
            "stream": bool(body.get("stream")),
            "main": main,
            "step": index,
            "reply": reply,
            "has_tools": bool(body.get("tools")),
            "messages": len(body.get("messages") or []),
            "body": body,
        }
        with self._lock:
            self.requests.append(body)
            self.records.append(rec)
            if self.log_path:
                with open(self.log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec) + "\n")


def build_message(api: ModelAPI, step: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The whole assistant message (content, stop_reason, final usage) of a text/tool_use step."""
    content: list[dict[str, Any]] = []
    text = step.get("text")
    if text is not None:
        content.append(
            {"type": "text", "text": str(text).replace("{tool_result}", last_tool_result(body))}
        )
    if "tool_use" in step:
        tool = step["tool_use"]
        content.append(
            {
                "type": "tool_use",
                "id": f"toolu_scripted_{api.next_id():06d}",
                "name": tool["name"],
                "input": fill_from_result(tool.get("input", {}), last_tool_result(body)),
            }
        )
    return {
        "id": f"msg_scripted_{api.next_id():06d}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": content,
        "stop_reason": "tool_use" if "tool_use" in step else "end_turn",
        "stop_sequence": None,
        "usage": {**DEFAULT_USAGE, **step.get("usage", {})},
    }


def sse_events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The SSE ``(event, data)`` sequence the real API streams for ``message``."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    for i, block in enumerate(message["content"]):
        first: dict[str, Any]
        if block["type"] == "text":
            first, delta, payload = {"type": "text", "text": ""}, "text_delta", block["text"]
        else:
            first, delta, payload = (
                {**block, "input": {}},
                "input_json_delta",
                json.dumps(block["input"]),
            )
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": i, "content_block": first},
            )
        )
        for piece in [payload[j : j + CHUNK] for j in range(0, len(payload), CHUNK)] or [""]:
            key = "text" if delta == "text_delta" else "partial_json"
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": delta, key: piece},
                    },
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": usage,
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _hang_up(conn: socket.socket) -> None:
    """Shut a client connection down, waking any thread blocked on it."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    """The HTTP server; ``server_close`` joins every handler thread."""

    daemon_threads = True
    api: ModelAPI


class _Handler(BaseHTTPRequestHandler):
    """One keep-alive connection; JSON replies use Content-Length, SSE uses chunked encoding."""

    protocol_version = "HTTP/1.1"
    server_version = "scripted-model-api"

    server: _Server

    @property
    def api(self) -> ModelAPI:
        return self.server.api

    def setup(self) -> None:
        super().setup()
        self.api.track(self.connection, True)

    def finish(self) -> None:
        self.api.track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logging
        pass

    def do_POST(self) -> None:
        try:
            body = json.loads(
                self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}"
            )
        except ValueError:
            return self.send_json(400, error_body(400))
        path = self.path.split("?", 1)[0]
        if path == "/v1/messages/count_tokens":
            return self.send_json(200, {"input_tokens": DEFAULT_USAGE["input_tokens"]})
        if path != "/v1/messages":
            return self.send_json(404, error_body(404))
        key = self.headers.get("x-api-key") or ""
        refused = self.api.admit(key)
        if refused is not None:
            status, message, headers = refused
            err = error_body(status)
            err["error"]["message"] = message
            return self.send_json(status, err, headers)
        try:
            main, index, step = self.api.choose(body)
            self.api.record(self.path, body, main, index, step, key)
            self.answer(step, body)
        except OSError:  # the client went away
            self.close_connection = True
        finally:
            self.api.leave(key)

    def answer(self, step: dict[str, Any], body: dict[str, Any]) -> None:
        """Send the reply for ``step``: an HTTP error, a stall, a JSON message or an SSE stream."""
        if "error" in step:
            status = int(step["error"])
            err = error_body(status)
            err["error"]["message"] = step.get("message", err["error"]["message"])
            extra = {"retry-after": str(step["retry_after"])} if "retry_after" in step else {}
            return self.send_json(status, err, {**extra, **step.get("headers", {})})
        delay = float(step.get("delay", 0))
        stall = stall_seconds(step)
        shown: dict[str, Any] = (
            {"text": "", "usage": step.get("usage", {})} if stall is not None else step
        )
        message = build_message(self.api, shown, body)
        if not body.get("stream"):
            if stall is not None or self.api.stopping.wait(delay):
                self.api.stopping.wait(stall or 0)
                self.close_connection = True  # no response at all
                return
            return self.send_json(200, message)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", f"req_scripted_{self.api.next_id():06d}")
        self.end_headers()
        events = sse_events(message)
        if stall is not None:
            self.send_event(*events[0])
            self.api.stopping.wait(stall)
            self.close_connection = True  # drop the stream without finishing it
            return
        for n, event in enumerate(events):
            if n and delay and self.api.stopping.wait(delay):
                self.close_connection = True
                return
            self.send_event(*event)
        self.write_chunk(b"")

    def send_event(self, name: str, data: dict[str, Any]) -> None:
        """Write one SSE event as one HTTP chunk."""
        self.write_chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

    def write_chunk(self, data: bytes) -> None:
        """Write one chunk of a chunked response (an empty chunk ends it)."""
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def send_json(
        self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        """Send a complete JSON response."""
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("request-id", f"req_scripted_{self.api.next_id():06d}")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)
        self.wfile.flush()


def main(argv: list[str] | None = None) -> None:
    """Command line: serve until SIGTERM/SIGINT, printing the URL first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", default=None, help="append one JSON line per request to this file")
    args = parser.parse_args(argv)
    api = ModelAPI(log_path=args.log, host=args.host, port=args.port)

    def _exit(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _exit)
    print(f"listening on {api.start()}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()


if __name__ == "__main__":
    main()

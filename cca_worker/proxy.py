"""The model API proxy each worker process runs on a loopback port: agents reach the model
API through it with a per-task token and never hold a real credential.

For every request it swaps the run's token for the run's credential, streams the request
and the answer through unchanged (asking for no compression, so it can read them; an answer
compressed all the same passes as it is, uncounted), counts the tokens
of each answer as they stream and keeps the credential's rate-limit headers. A 429 with a
reset parks the credential (:class:`~cca_core.credentials.pool.CredentialPool`); while it
is parked, its agents are answered here with a 429 and the time left, and the model API sees
nothing. A reset within ``agents.window_wait_seconds`` is waited out by the agent (the CLI
honours a ``retry-after`` of up to 60 s); a later one is sent as a ``retry-after`` the CLI
does not wait for, so the run ends and its task is parked until a credential is free
(:attr:`Route.window`).
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import redis

from cca_core.credentials.limits import rate_limit_headers, reset_of
from cca_core.credentials.pool import Busy, CredentialPool, Lease
from cca_core.tokens.usage import FIELDS, UsageMeter

log = logging.getLogger(__name__)
TOKEN_PREFIX = "sk-cca-run-"  # secret-looking, so redaction catches one wherever it shows
# A retry-after the CLI gives up at once on (it waits out 60 s at most; notes/claude-cli.md §2.1).
GIVE_UP_RETRY_AFTER_S = 3600
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                         "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length"})
_NOT_FORWARDED = _HOP_BY_HOP | {"x-api-key", "authorization", "accept-encoding"}


@dataclass
class Route:
    """One run's way to the model API: its token, its credential's lease, what went through."""

    token: str
    lease: Lease
    requests: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))
    # The reset of a usage window the run was turned away by (past window_wait_seconds).
    window: datetime | None = None


class ModelProxy:
    """A threaded HTTP proxy on 127.0.0.1; :meth:`take` gives a run its route."""

    def __init__(self, pool: CredentialPool, *, window_wait_s: int) -> None:
        self.pool = pool
        self.window_wait_s = window_wait_s
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self.http = httpx.Client(timeout=httpx.Timeout(600.0, connect=15.0), follow_redirects=False)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        threading.Thread(target=self._server.serve_forever, name="model-proxy", daemon=True).start()

    def close(self) -> None:
        """Stop serving (a reloaded configuration brings another proxy)."""
        self._server.shutdown()
        self._server.server_close()
        self.http.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def take(self, task_id: str) -> Route | Busy:
        """A route for a run of ``task_id`` on the credential with the most room, or Busy."""
        lease = self.pool.acquire(f"{task_id}:{secrets.token_hex(6)}")
        if isinstance(lease, Busy):
            return lease
        route = Route(TOKEN_PREFIX + secrets.token_urlsafe(24), lease)
        with self._lock:
            self._routes[route.token] = route
        return route

    def renew(self, route: Route) -> None:
        """Keep the route's lease (a heartbeat); a Redis error is logged, the run goes on."""
        try:
            self.pool.renew(route.lease)
        except redis.RedisError:
            log.warning("model proxy: could not renew the lease of %s", route.lease.holder, exc_info=True)

    def give_back(self, route: Route) -> bool:
        """The route's token stops working and its credential is given back; True when that
        credential now has room for a waiting task."""
        with self._lock:
            self._routes.pop(route.token, None)
        try:
            return self.pool.release(route.lease)
        except redis.RedisError:
            log.warning("model proxy: could not give back %s (its lease lapses)", route.lease.holder,
                        exc_info=True)
            return False

    def route(self, token: str) -> Route | None:
        with self._lock:
            return self._routes.get(token)

    def turned_away(self, route: Route, reset: datetime) -> int:
        """The retry-after to give an agent refused until ``reset``: the seconds left when it
        may wait them out, else one the CLI gives up on (the run's task is parked)."""
        left = max(1, math.ceil((reset - datetime.now(UTC)).total_seconds()))
        if left <= self.window_wait_s:
            return left
        route.window = max(route.window or reset, reset)
        return max(GIVE_UP_RETRY_AFTER_S, left)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: ModelProxy


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - its own log, not stderr
        log.debug("model proxy: " + format, *args)

    def do_POST(self) -> None:
        self._forward()

    def do_GET(self) -> None:
        self._forward()

    def _forward(self) -> None:
        proxy = self.server.proxy
        route = proxy.route(self._token())
        if route is None:
            self._error(401, "authentication_error", "not a token of a running cca task")
            return
        length = self.headers.get("content-length")
        if self.command == "POST" and length is None:
            self._error(411, "invalid_request_error", "a request body needs a Content-Length")
            return
        body = self.rfile.read(int(length or 0))
        try:
            parked = proxy.pool.parked_until(route.lease.credential)
        except redis.RedisError:  # a Redis blip must not cost the run a model call
            parked = None
        if parked is not None and parked > datetime.now(UTC):
            self._error(429, "rate_limit_error", "this credential's usage window has not reset yet",
                        retry_after=proxy.turned_away(route, parked))
            return
        credential = proxy.pool.credentials[route.lease.credential]
        headers = {name: value for name, value in self.headers.items()
                   if name.lower() not in _NOT_FORWARDED}
        headers["accept-encoding"] = "identity"
        if credential.api_key:
            headers["x-api-key"] = credential.api_key
        else:
            headers["authorization"] = f"Bearer {credential.auth_token}"
        request = proxy.http.build_request(self.command, credential.base_url + self.path,
                                            headers=headers, content=body)
        try:
            response = proxy.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("model proxy: %s %s failed: %s", self.command, self.path, type(exc).__name__)
            self._error(502, "api_error", f"the model API could not be reached ({type(exc).__name__})")
            return
        try:
            self._answer(route, response)
        finally:
            response.close()

    def _answer(self, route: Route, response: httpx.Response) -> None:
        proxy = self.server.proxy
        limits = rate_limit_headers(response.headers)
        retry_after = None
        if response.status_code == 429 and (reset := reset_of(response.headers, datetime.now(UTC))):
            proxy.pool.park(route.lease.credential, reset)
            retry_after = proxy.turned_away(route, reset)
        self.send_response(response.status_code)
        for name, value in response.headers.multi_items():
            if name.lower() not in _HOP_BY_HOP and not (retry_after and name.lower() == "retry-after"):
                self.send_header(name, value)
        if retry_after:
            self.send_header("retry-after", str(retry_after))
        meter = UsageMeter()
        streaming = response.headers.get("content-type", "").startswith("text/event-stream")
        # Counted before the answer's end is sent: whoever saw the answer end sees it counted.
        if streaming:
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for chunk in _metered(response.iter_raw(), meter):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self._count(route, limits, meter)
            self.wfile.write(b"0\r\n\r\n")
        else:
            content = response.read()
            _meter_json(content, meter)
            self._count(route, limits, meter)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

    def _count(self, route: Route, limits: dict[str, str], meter: UsageMeter) -> None:
        """Add an answer's tokens to its run's and its credential's counts."""
        proxy = self.server.proxy
        tokens = {name: getattr(meter.totals, name) for name in FIELDS}
        route.requests += 1
        for name, count in tokens.items():
            route.tokens[name] += count
        try:
            proxy.pool.record(route.lease.credential, limits, tokens)
        except Exception:
            log.warning("model proxy: could not record usage of credential %s", route.lease.credential,
                        exc_info=True)

    def _token(self) -> str:
        token = self.headers.get("x-api-key") or ""
        bearer = self.headers.get("authorization") or ""
        return token or bearer.removeprefix("Bearer ").strip()

    def _error(self, status: int, kind: str, message: str, retry_after: int | None = None) -> None:
        body = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        if retry_after is not None:
            self.send_header("retry-after", str(retry_after))
        self.end_headers()
        self.wfile.write(body)


def _metered(chunks: Iterator[bytes], meter: UsageMeter) -> Iterator[bytes]:
    """Pass the chunks of an event stream on, feeding each complete ``data:`` line to ``meter``."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.startswith(b"data:") and b'"usage"' in line:
                _meter_event(line[5:], meter)
        yield chunk


def _meter_event(data: bytes, meter: UsageMeter) -> None:
    try:
        event = json.loads(data)
    except ValueError:
        return
    if isinstance(event, dict):
        meter.observe({"type": "stream_event", "event": event})


def _meter_json(content: bytes, meter: UsageMeter) -> None:
    """A whole (non-streaming) message's usage."""
    try:
        message = json.loads(content)
    except ValueError:
        return
    if isinstance(message, dict) and message.get("type") == "message":
        meter.observe({"type": "assistant", "message": message})

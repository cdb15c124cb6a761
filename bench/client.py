"""The benchmark's HTTP client: one ``POST /api/v1/tasks`` per connection with the standard
library's ``http.client``. httpx, which ``cca`` uses, adds about 0.6 ms of its own per request
on this machine; the benchmark measures the fleet, so it uses the thinnest client."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import httpx

from bench.config import BODY
from bench.waiting import BenchError

_PAYLOAD = json.dumps(BODY).encode()
_HEADERS = {"Content-Type": "application/json"}


def post_task(base_url: str, timeout_s: float = 30.0) -> str:
    """Submit the benchmark's task on a fresh connection; return its id. Raises BenchError
    unless the API answers 202."""
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port,
                                            timeout=timeout_s)
    try:
        connection.request("POST", "/api/v1/tasks", _PAYLOAD, _HEADERS)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 202:
        raise BenchError(f"POST answered {response.status}: {body[:300]!r}")
    return str(json.loads(body)["id"])


def timed_gets(client: httpx.Client, path: str, requests: int, section: str) -> list[float]:
    """``requests`` GETs of ``path`` one at a time after 3 to warm up (pools, caches,
    templates): each one's milliseconds. Raises BenchError unless each answers 200."""
    for _ in range(3):
        client.get(path)
    taken = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = client.get(path)
        taken.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise BenchError(f"({section}) {path} answered {answer.status_code}")
    return taken

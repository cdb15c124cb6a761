"""The benchmark's HTTP client: one ``POST /api/v1/tasks`` per connection with the standard
library's ``http.client``. httpx, which ``cca`` uses, adds about 0.6 ms of its own per request
on this machine; the benchmark measures the fleet, so it uses the thinnest client."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

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

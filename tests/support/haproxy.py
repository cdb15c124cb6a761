"""The shipped ops/haproxy/haproxy.cfg run outside Docker, in front of API processes of this
machine (the HAProxy test and bench.faults): its config with local addresses, and what its
stats page says of each backend server."""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import httpx

CONFIG = Path(__file__).resolve().parents[2] / "ops/haproxy/haproxy.cfg"


def haproxy_path() -> str | None:
    path = shutil.which("haproxy") or "/usr/sbin/haproxy"
    return path if os.access(path, os.X_OK) else None


def render(backends: list[str], port: int, stats_port: int) -> str:
    """The committed config with this machine's addresses (host:port of each API)."""
    config = CONFIG.read_text()
    for name, address in zip(("cca-api-1:9200", "cca-api-2:9200"), backends, strict=True):
        if name not in config:
            raise ValueError(f"{CONFIG} no longer names {name}")
        config = config.replace(name, address)
    return (config.replace("bind :9200", f"bind 127.0.0.1:{port}")
                  .replace("bind 127.0.0.1:8404", f"bind 127.0.0.1:{stats_port}"))


def servers(stats_url: str) -> dict[str, dict[str, str]]:
    """The API servers HAProxy knows, by name, as its stats CSV has them ({} if it does not
    answer)."""
    try:
        body = httpx.get(stats_url, timeout=2).text.lstrip("# ")
    except httpx.TransportError:
        return {}
    rows = csv.DictReader(io.StringIO(body))
    return {row["svname"]: row for row in rows if row["pxname"] == "cca_api_servers"}

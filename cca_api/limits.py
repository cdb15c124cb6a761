"""Rate limits per key and per client IP, counted in Redis so every API process shares them
(per-key quotas are ``cca_core.access.quotas``)."""

from __future__ import annotations

import ipaddress
import logging
import time

import redis
from flask import Request

from cca_core.errors import QuotaExceeded
from cca_core.settings import SecuritySettings

log = logging.getLogger(__name__)
WINDOW_S = 60


def client_ip(request: Request, security: SecuritySettings) -> str:
    """The caller's address. ``X-Forwarded-For`` counts only when the direct peer is a trusted
    proxy; then the right-most address that is not a trusted proxy is the client."""
    peer = request.remote_addr or "unknown"
    if not security.trust_proxy or not _trusted(peer, security.trusted_proxies):
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, security.trusted_proxies):
            return hop
    return peer


def _trusted(address: str, proxies: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
        return any(ip in ipaddress.ip_network(proxy, strict=False) for proxy in proxies)
    except ValueError:
        return False


def check_rate(client: redis.Redis, bucket: str, limit: int) -> None:
    """Count one request in ``bucket``'s current minute; raise QuotaExceeded over ``limit``.
    If Redis is unreachable the request is let through (and logged)."""
    if limit <= 0:
        return
    now = time.time()
    window = int(now // WINDOW_S)
    key = f"cca:rl:{bucket}:{window}"
    try:
        pipe = client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, WINDOW_S * 2)
        count = int(pipe.execute()[0])
    except redis.RedisError as exc:
        log.warning("rate limit not checked (%s)", exc)
        return
    if count > limit:
        retry = int((window + 1) * WINDOW_S - now) + 1
        raise QuotaExceeded(f"rate limit of {limit} requests per minute reached for {bucket}",
                            limit=bucket.split(":", 1)[0] + "_per_minute", retry_after_s=retry,
                            code="rate_limited")

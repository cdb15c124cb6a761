"""Signing a delivery: HMAC-SHA256 with the endpoint's secret over ``"<timestamp>.<body>"``.

Headers of every delivery: ``X-CCA-Event`` (its name), ``X-CCA-Delivery`` (its id, the same on
each retry: a receiver drops repeats by it), ``X-CCA-Timestamp`` (Unix seconds, when this
attempt was signed) and ``X-CCA-Signature`` (``v1=<hex digest>``). A receiver recomputes the
digest over the raw body, compares in constant time, and refuses old timestamps (replays)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 300


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def headers(secret: str, event: str, delivery_id: int, body: bytes,
            now: float | None = None) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {"Content-Type": "application/json", "User-Agent": "cca-webhooks/1",
            "X-CCA-Event": event, "X-CCA-Delivery": str(delivery_id),
            "X-CCA-Timestamp": str(timestamp), "X-CCA-Signature": signature(secret, timestamp, body)}


def verify(secret: str, timestamp: str, signed: str, body: bytes, now: float | None = None) -> bool:
    """What a receiver checks: the signature, and a timestamp within five minutes."""
    if not timestamp.isdigit() or abs((time.time() if now is None else now) - int(timestamp)) > TOLERANCE_S:
        return False
    return hmac.compare_digest(signature(secret, int(timestamp), body), signed)

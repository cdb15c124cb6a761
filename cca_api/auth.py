"""API keys: ``X-API-Key`` or ``Authorization: Bearer``, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from flask import Request

from cca_core.errors import Unauthorized


def presented_key(request: Request) -> str | None:
    if key := request.headers.get("X-API-Key"):
        return key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def check_key(presented: str | None, keys: Sequence[str]) -> None:
    """Raise Unauthorized unless ``presented`` equals one of ``keys``; every key is compared."""
    if not presented:
        raise Unauthorized("an API key is required: send X-API-Key or Authorization: Bearer")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented.encode(), key.encode())
    if not matched:
        raise Unauthorized("the API key is not valid")

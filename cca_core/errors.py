"""The one error tree of cca.

CcaError
 ├── Invalid          bad input: a field, a flag or a config key (HTTP 422)
 │    └── ConfigError  a bad configuration key (start-up)
 ├── BadRequest       malformed request: not JSON, wrong shape (HTTP 400)
 ├── Unauthorized     missing or wrong API key (HTTP 401)
 ├── Forbidden        a valid key that may not do this (HTTP 403)
 ├── NotFound         no such task, or not yours (HTTP 404)
 ├── Conflict         the state forbids it, e.g. cancelling a finished task (HTTP 409)
 ├── TooLarge         request body over the limit (HTTP 413)
 ├── UnsupportedMedia body is not application/json (HTTP 415)
 ├── QuotaExceeded    over a quota or rate limit (HTTP 429)
 └── Unavailable      Redis or Postgres unreachable (HTTP 503)

The API maps them to one JSON body ``{"error": {"code", "message", "field"?}}`` in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class CcaError(Exception):
    """Base of every error cca raises on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class Invalid(CcaError):
    status = 422
    code = "invalid"


class ConfigError(Invalid):
    code = "invalid_config"


class BadRequest(CcaError):
    status = 400
    code = "bad_request"


class Unauthorized(CcaError):
    status = 401
    code = "unauthorized"


class Forbidden(CcaError):
    status = 403
    code = "forbidden"


class NotFound(CcaError):
    status = 404
    code = "not_found"


class Conflict(CcaError):
    status = 409
    code = "conflict"


class TooLarge(CcaError):
    status = 413
    code = "too_large"


class UnsupportedMedia(CcaError):
    status = 415
    code = "unsupported_media_type"


class QuotaExceeded(CcaError):
    status = 429
    code = "quota_exceeded"

    def __init__(self, message: str, *, limit: str, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.limit = limit
        self.retry_after_s = max(1, retry_after_s)

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "limit": self.limit, "retry_after": self.retry_after_s}


class Unavailable(CcaError):
    status = 503
    code = "unavailable"


def field_path(loc: Sequence[int | str]) -> str:
    """A validation error's location as a user writes it: ``allowed_tools[2]``, ``a.b[0].c``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


def plain_message(error: Mapping[str, Any]) -> str:
    """A pydantic error's message without its ``Value error, `` prefix."""
    if error["type"] == "extra_forbidden":
        return "unknown field"
    return str(error["msg"]).removeprefix("Value error, ")

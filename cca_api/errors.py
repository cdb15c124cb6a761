"""Every error leaves the API as ``{"error": {"code", "message", "field"?}}``: never HTML,
never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, Response, jsonify
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from cca_core.errors import CcaError, QuotaExceeded

log = logging.getLogger(__name__)
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "too_large",
              415: "unsupported_media_type", 422: "invalid", 429: "rate_limited"}
UNAVAILABLE_RETRY_S = 1


def error_response(status: int, code: str, message: str, field: str | None = None) -> Response:
    body: dict[str, object] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    response = jsonify({"error": body})
    response.status_code = status
    return response


def init_app(app: Flask, on_quota: Callable[[QuotaExceeded], None] | None = None) -> None:
    """Answer every error as JSON; ``on_quota`` is told of each refusal over a quota or rate
    limit (a failure there is logged, never the answer)."""
    @app.errorhandler(CcaError)
    def _cca_error(exc: CcaError) -> Response:
        response = jsonify({"error": exc.to_dict()})
        response.status_code = exc.status
        if isinstance(exc, QuotaExceeded):
            response.headers["Retry-After"] = str(exc.retry_after_s)
            if on_quota is not None:
                try:
                    on_quota(exc)
                except (SQLAlchemyError, RedisError) as error:
                    log.warning("could not tell the webhooks of a quota reached: %s", error)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="cca", charset="UTF-8"'
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        response = error_response(status, HTTP_CODES.get(status, "error"), exc.description or exc.name)
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def _unavailable(exc: Exception) -> Response:
        # Postgres or Redis unreachable, or a pooled connection lost to a restart: the
        # request changed nothing (or, with an Idempotency-Key, is safe to repeat).
        cause = exc.orig if isinstance(exc, OperationalError) else exc  # never the SQL text
        log.warning("a backing service is unavailable: %s", cause)
        response = error_response(503, "unavailable",
                                  "Postgres or Redis is unavailable; retry shortly")
        response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_S)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; see the API log")

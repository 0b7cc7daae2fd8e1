"""One mapping from every error to the API's envelope."""

from __future__ import annotations

from typing import Any

import logging

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

from rotor_lite.api.render import error_body
from rotor_lite.errors import RateLimited, RotorError, Unavailable
from rotor_lite.store.contract import IntegrityError, StoreError

log = logging.getLogger("rotor_lite.api")

_HTTP_CODES = {
    400: "VALIDATION_ERROR", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT", 410: "GONE", 413: "PAYLOAD_TOO_LARGE", 415: "VALIDATION_ERROR", 422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
}


def envelope(status: int, code: str, message: str, details: dict[str, object] | None = None,
             headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        content=msgspec.json.encode(error_body(code, message, details)), status_code=status,
        media_type="application/json", headers=headers,
    )


def rotor_error_handler(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, RotorError)
    headers = None
    if isinstance(exc, RateLimited):
        headers = rate_limit_headers(exc.limit, 0, exc.reset_at)
        headers["Retry-After"] = str(exc.retry_after)
    return envelope(exc.status, exc.code, exc.message, exc.details, headers)


def http_error_handler(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, HTTPException)
    status = 422 if exc.status_code == 400 else exc.status_code
    code = _HTTP_CODES.get(exc.status_code, "INTERNAL" if status >= 500 else "HTTP_ERROR")
    message = "request body too large" if status == 413 else str(exc.detail)
    return envelope(status, code, message, None, dict(exc.headers or {}))


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if isinstance(exc, StoreError) and not isinstance(exc, IntegrityError):
        # A read that found the database gone (PostgreSQL restarting): the request may be tried again.
        log.error("storage unavailable", extra={"path": request.url.path, "error": str(exc)})
        unavailable = Unavailable("storage is unavailable: try again shortly")
        return envelope(unavailable.status, unavailable.code, unavailable.message)
    log.exception("unhandled error", extra={"path": request.url.path}, exc_info=exc)
    return envelope(500, "INTERNAL", "internal server error")


def rate_limit_headers(limit: int, remaining: int, reset_at: int) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": str(reset_at)}

"""The request log: one INFO line per HTTP request, written after its response.

It wraps the whole Litestar app, so requests no route matched (404, 405) are logged too. The line
holds the method, the path without its query string, the status, the time taken and the caller's
workspace when the key was accepted: never a header, a key, a query string or a body. With INFO
disabled it costs one level check per request.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["log_requests"]

log = logging.getLogger("rotor_lite.http")


def log_requests(app: ASGIApp) -> ASGIApp:
    """`app` with every HTTP request logged."""

    async def logged(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not log.isEnabledFor(logging.INFO):
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app fails before answering

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_noting_status)
        finally:
            _log(scope, status, started)

    return logged


def _log(scope: Scope, status: int, started: float) -> None:
    principal: Any = (scope.get("state") or {}).get("principal")
    log.info("request", extra={
        "method": scope.get("method"), "path": scope.get("path"), "status": status,
        "ms": round((time.perf_counter() - started) * 1000, 2),
        "workspace": principal.workspace_id if principal is not None else None,
    })

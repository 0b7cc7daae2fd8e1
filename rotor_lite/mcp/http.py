"""`/mcp`: the workflow tools over Streamable HTTP, each call made in-process through the app's own API.

A tool call becomes requests to the very app that serves `/mcp`, handed straight to it (no
socket) with the `Authorization` (and `X-Rotor-Workspace`) of the MCP request and its client
address: the routes' roles, rate limit and audit apply as to any other caller. Stateless: each
POST stands alone, so every call is made with the key of the request that carries it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from rotor_lite.mcp.server import mcp_server
from rotor_lite.mcp.workflows import WORKFLOW_TOOLS
from rotor_lite.sdk import AsyncRotor

__all__ = ["session_manager"]

_FORWARDED = ("x-rotor-workspace",)
IN_PROCESS_HOST = "rotor-lite.in-process"
_INSTRUCTIONS = (
    "Tools for one rotor-lite workspace's durable workflows: trigger and invoke workflows, follow their runs, "
    "approve what waits for a human, and manage queues and schedules. drain_queue (and set_queue_state with "
    "state drain) need confirm: true; ask the user before setting it."
)


class _InProcess(httpx.AsyncBaseTransport):
    """Requests to the app itself, with headers of the MCP request added."""

    def __init__(self, app: Any, client: tuple[str, int], headers: dict[str, str]) -> None:
        self._app = httpx.ASGITransport(app=app, client=client)
        self._headers = headers

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers.update(self._headers)
        return await self._app.handle_async_request(request)


@asynccontextmanager
async def _in_process(api: Any, request: Any) -> AsyncIterator[AsyncRotor]:
    """An API client for one call, speaking for the caller of the MCP `request` (a starlette Request)."""
    headers = {name: request.headers[name] for name in _FORWARDED if name in request.headers}
    key = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    transport = _InProcess(api, tuple(request.scope.get("client") or ("127.0.0.1", 0)), headers)
    async with AsyncRotor(api_key=key, base_url=f"http://{IN_PROCESS_HOST}", transport=transport) as client:
        yield client


class _NotInProcess(logging.Filter):
    """httpx logs each request it sends at INFO: the app's request log already has the in-process ones."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.args, tuple) and len(record.args) > 1 and IN_PROCESS_HOST in str(record.args[1]))


_NOT_IN_PROCESS = _NotInProcess()


def session_manager(api: Any) -> StreamableHTTPSessionManager:
    """The `/mcp` handler, whose tools call the ASGI app `api`; enter its `run()` for as long as it serves."""
    logging.getLogger("mcp").setLevel(logging.WARNING)  # the SDK logs every request at INFO
    logging.getLogger("httpx").addFilter(_NOT_IN_PROCESS)

    def connect(ctx: ServerRequestContext[Any, Any]) -> AbstractAsyncContextManager[AsyncRotor]:
        return _in_process(api, ctx.request)

    server = mcp_server("rotor-lite", WORKFLOW_TOOLS, connect, _INSTRUCTIONS)
    return StreamableHTTPSessionManager(app=server, stateless=True, json_response=True)

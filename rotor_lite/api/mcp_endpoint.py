"""`/mcp` in the app: the key check of every request, and the MCP SDK started on the first one.

The SDK (with pydantic and starlette) takes a third of a second to import: a server that is never
asked for `/mcp` does not pay it. Its session manager then runs in a task group of the app's
lifespan, so that it stops with the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from litestar import Litestar, Request, asgi
from litestar.handlers import ASGIRouteHandler
from litestar.types import Receive, Scope, Send

from rotor_lite.api.auth import Access, provide_principal
from rotor_lite.models import Role
from rotor_lite.api.request_log import log_requests

__all__ = ["McpEndpoint"]

Handler = Any  # an ASGI callable of the MCP SDK
# Any workspace or team key passes; each tool's API call then meets its route's own access.
_ANY_WORKSPACE_KEY = Access(role=Role.VIEWER, any_workspace=True)


class McpEndpoint:
    """The `/mcp` route (`route`) and its lifespan (`lifespan`), for one app."""

    def __init__(self) -> None:
        self._tasks: TaskGroup | None = None
        self._handler: Handler | None = None
        self._starting = anyio.Lock()
        self.route: ASGIRouteHandler = asgi("/mcp", opt={"access": _ANY_WORKSPACE_KEY})(self._serve)

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            try:
                yield
            finally:
                self._tasks = None
                tasks.cancel_scope.cancel()

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        await provide_principal(Request(scope, receive))  # 401 without a valid key, 403 for a queue-scoped one
        handler = self._handler or await self._start(scope["app"])
        await handler(scope, receive, send)

    async def _start(self, app: Litestar) -> Handler:
        async with self._starting:
            if self._handler is None:
                from rotor_lite.mcp.http import session_manager

                manager = session_manager(log_requests(app))  # each tool's API calls in the request log too
                assert self._tasks is not None, "the app's lifespan has not started"
                await self._tasks.start(_run, manager)
                self._handler = manager.handle_request
        return self._handler


async def _run(manager: Any, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    async with manager.run():
        task_status.started()
        await anyio.sleep_forever()

"""MCP client sessions (the official `mcp` SDK's client) against real servers: `rotor-lite mcp` spawned over
stdio, and `/mcp` of `rotor-lite serve` over Streamable HTTP."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from tests.helpers import ServerProcess

ADMIN_TOKEN = "op_test_token_0123456789"


def mcp_env(server: ServerProcess, key: str | None = None) -> dict[str, str]:
    """What an AI tool's config puts in `env` for `rotor-lite mcp`."""
    return {"ROTOR_API_KEY": key or server.api_key, "ROTOR_API_URL": server.url}


@asynccontextmanager
async def stdio_session(
    env: dict[str, str], *args: str, program: Sequence[str] = (sys.executable, "-m", "rotor_lite"),
) -> AsyncIterator[ClientSession]:
    """An initialized session with a `rotor-lite mcp ARGS` subprocess (only `env` and the basics in its environment)."""
    params = StdioServerParameters(
        command=program[0], args=[*program[1:], "mcp", *args], env=env, cwd=str(Path(__file__).parent),
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def http_session(server: ServerProcess, key: str | None = None) -> AsyncIterator[ClientSession]:
    """An initialized session with `/mcp` of `server`, sending `Authorization: Bearer <key>` on every request."""
    headers = {"Authorization": f"Bearer {key or server.api_key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """The structured result of a tool call that must succeed."""
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, (tool, result.structured_content)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def refused(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """The `{code, message, details}` of a tool call that must be a tool error (the session goes on)."""
    result = await session.call_tool(tool, arguments)
    assert result.is_error, (tool, result.structured_content)
    assert isinstance(result.structured_content, dict)
    assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
    error: dict[str, Any] = result.structured_content["error"]
    assert error["code"] and error["message"]
    return error


async def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Await `check()` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while not (value := await check()):
        assert time.monotonic() < deadline, "condition not met in time"
        await anyio.sleep(0.05)
    return value

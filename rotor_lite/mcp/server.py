"""The tools as an MCP server (the official `mcp` SDK's low-level `Server`), and its stdio transport."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import msgspec
from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from rotor_lite import __version__
from rotor_lite.mcp.tools import Tool, ToolResult
from rotor_lite.sdk import AsyncRotor

__all__ = ["Connect", "mcp_server", "serve_stdio"]

# The API client a tool call uses, made from the call's context (the HTTP endpoint: the caller's key).
Connect = Callable[[ServerRequestContext[Any, Any]], AbstractAsyncContextManager[AsyncRotor]]


def mcp_server(name: str, tools: Sequence[Tool], connect: Connect, instructions: str) -> Server[Any]:
    """An MCP server listing `tools` and running each call with the client `connect` gives."""
    by_name = {tool.name: tool for tool in tools}
    listing = [_described(tool) for tool in tools]

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listing)

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = by_name.get(params.name)
        if tool is None:
            raise MCPError(types.INVALID_PARAMS, f"unknown tool '{params.name}'")
        async with connect(ctx) as client:
            return _result(await tool.call(client, params.arguments))

    return Server(
        name, version=__version__, instructions=instructions, on_list_tools=list_tools, on_call_tool=call_tool,
    )


def _described(tool: Tool) -> types.Tool:
    hints = types.ToolAnnotations(
        read_only_hint=tool.read_only, destructive_hint=tool.destructive if not tool.read_only else None,
    )
    return types.Tool(name=tool.name, description=tool.description, input_schema=tool.input_schema(), annotations=hints)


def _result(outcome: ToolResult) -> types.CallToolResult:
    text = msgspec.json.encode(outcome.value).decode()
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=outcome.value, is_error=outcome.is_error,
    )


async def serve_stdio(server: Server[Any]) -> None:
    """Serve over stdin and stdout until stdin closes; stdout carries nothing but JSON-RPC."""
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())

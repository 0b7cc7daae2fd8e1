"""`rotor-lite mcp`: the MCP server AI tools (Claude Code, Claude Desktop, Cursor) start over stdio."""

from __future__ import annotations

import os

import click

_INSTRUCTIONS = (
    "Tools for one rotor-lite workspace: queues, cron schedules, jobs, the dead-letter queue, API keys. "
    "Destructive tools (delete, drain, replay, fire, revoke) need confirm: true; ask the user before setting it."
)
_ADMIN_INSTRUCTIONS = (
    "Operator tools for a whole rotor-lite server: every workspace's queues, schedules, jobs and DLQ. "
    "rotor_replay_dlq and rotor_fire_schedule_now need confirm: true; ask the user before setting it."
)


@click.command("mcp")
@click.option("--admin", is_flag=True,
              help="Serve the operator tools across all workspaces instead, with the server's [mcp] admin_token "
                   "(from --config or ./rotor.toml, $ROTOR_MCP_ADMIN_TOKEN or $ROTOR_ADMIN_TOKEN).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Path to rotor.toml (with --admin).")
def mcp(*, admin: bool, config_file: str | None) -> None:
    """Serve rotor-lite's MCP tools over stdio, for AI tools (Claude Code, Claude Desktop, Cursor).

    The 27 workspace tools call the API at $ROTOR_API_URL (default http://127.0.0.1:8080) with
    $ROTOR_API_KEY, so the key's role applies to every tool. stdout carries only the MCP protocol;
    logs go to stderr.
    """
    import anyio  # the MCP SDK and the HTTP client only for this command

    from rotor_lite.logs import configure_logging

    configure_logging("warning", "text")
    key = _admin_token(config_file) if admin else os.environ.get("ROTOR_API_KEY", "")
    if not key:
        raise click.ClickException("set ROTOR_API_KEY to a rotor-lite API key (rt_ws_…)")
    anyio.run(_serve, key, admin)


def _admin_token(config_file: str | None) -> str:
    from rotor_lite.config import load_settings
    from rotor_lite.errors import ConfigError

    try:
        token = load_settings(config_file).mcp.admin_token
    except ConfigError as exc:
        raise click.ClickException(exc.message) from exc
    if not token:
        raise click.ClickException("no operator token: set [mcp] admin_token in rotor.toml, or ROTOR_MCP_ADMIN_TOKEN")
    return token


async def _serve(key: str, admin: bool) -> None:
    from contextlib import nullcontext

    from rotor_lite.mcp.admin import ADMIN_TOOLS
    from rotor_lite.mcp.server import mcp_server, serve_stdio
    from rotor_lite.mcp.workspace import WORKSPACE_TOOLS
    from rotor_lite.sdk import AsyncRotor

    tools, name, instructions = (ADMIN_TOOLS, "rotor-lite-admin", _ADMIN_INSTRUCTIONS) if admin else (
        WORKSPACE_TOOLS, "rotor-lite", _INSTRUCTIONS)
    async with AsyncRotor(api_key=key) as client:  # base URL: $ROTOR_API_URL
        await serve_stdio(mcp_server(name, tools, lambda ctx: nullcontext(client), instructions))

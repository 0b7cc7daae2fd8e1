"""`rotor` loads a command's module only when it is used: help and client commands never import the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest

from rotor_lite.cli import COMMANDS, main

SERVER_SIDE = ("litestar", "uvicorn", "aiosqlite", "aiohttp", "mcp")  # mcp: the MCP SDK, for `rotor mcp` alone
CLIENT_COMMANDS = sorted(name for name, (target, _) in COMMANDS.items() if target.startswith("rotor_lite.cli.client."))


def modules_imported_by(*args: str) -> set[str]:
    """The top-level packages a `rotor ARGS` run has imported by its end (it talks to no server)."""
    code = (
        "import json, sys\n"
        "from rotor_lite.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\n"
    )
    env = {**os.environ, "ROTOR_API_URL": "http://127.0.0.1:9", "ROTOR_API_KEY": "rt_ws_none"}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=60)
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("args", [["--help"], ["queues", "--help"], ["queues", "update", "--help"], ["mcp", "--help"]])
def test_help_imports_nothing_of_the_server(args: list[str]) -> None:
    imported = modules_imported_by(*args)

    assert not imported & set(SERVER_SIDE)
    assert "httpx" not in imported  # nor the SDK's HTTP client


@pytest.mark.parametrize("args", [["queues", "list"], ["jobs", "list", "q"], ["status"], ["audit"]])
def test_client_commands_import_nothing_of_the_server(args: list[str]) -> None:
    assert not modules_imported_by(*args) & set(SERVER_SIDE)


def test_the_listing_shows_each_command_with_its_own_help() -> None:
    context = click.Context(main)
    for name, (_, summary) in COMMANDS.items():
        command = main.get_command(context, name)
        assert command is not None and command.get_short_help_str(limit=1000) == summary, name
    assert "queues" in CLIENT_COMMANDS and "serve" not in CLIENT_COMMANDS

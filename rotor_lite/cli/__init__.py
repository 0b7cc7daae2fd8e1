"""The `rotor-lite` / `rotor` command: `serve`, offline admin commands, and the API client commands."""

from __future__ import annotations

import click

from rotor_lite import __version__
from rotor_lite.cli.admin import admin, keys, workspaces
from rotor_lite.cli.client import register_client_commands
from rotor_lite.cli.importers import import_group
from rotor_lite.cli.serve import serve
from rotor_lite.cli.workflows_app import workflows as workflows_app


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rotor-lite")
def main() -> None:
    """rotor-lite: Rotor's durable job queues as one self-hosted process on SQLite."""


main.add_command(serve)
main.add_command(workspaces)
main.add_command(keys)
main.add_command(admin)
register_client_commands(main)
main.add_command(import_group)
main.add_command(workflows_app)

__all__ = ["main"]

"""The `rotor` client commands: they talk to a rotor-lite server over HTTP through the SDK."""

from __future__ import annotations

import click

from rotor_lite.cli import COMMANDS, main

__all__ = ["register_client_commands"]


def register_client_commands(group: click.Group) -> None:
    """Add every client command (`login`, `queues`, `jobs`, …) to `group`, as `rotor` has them."""
    context = click.Context(main)
    for name, (target, _) in COMMANDS.items():
        command = main.get_command(context, name)
        if target.startswith(f"{__name__}.") and command is not None:
            group.add_command(command, name)

"""The `rotor` client commands: they talk to a rotor-lite server over HTTP through the SDK."""

from __future__ import annotations

import click

from rotor_lite.cli.client import jobs, login, queues, status

__all__ = ["register_client_commands"]


def register_client_commands(group: click.Group) -> None:
    """Add `login`, `queues`, `jobs`, `status` and `usage` to the main `rotor` group."""
    for command in (login.login, queues.queues, jobs.jobs, status.status, status.usage):
        group.add_command(command)

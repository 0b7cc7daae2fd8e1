"""The `rotor` client commands: they talk to a rotor-lite server over HTTP through the SDK."""

from __future__ import annotations

import click

from rotor_lite.cli.client import jobs, login, queues, status
from rotor_lite.cli.client import schedules
from rotor_lite.cli.client import alerts, audit, secrets, webhooks
from rotor_lite.cli.client import approvals, guardrails
from rotor_lite.cli.client import workflows

__all__ = ["register_client_commands"]


def register_client_commands(group: click.Group) -> None:
    """Add `login`, `queues`, `jobs`, `status` and `usage` to the main `rotor` group."""
    for command in (login.login, queues.queues, jobs.jobs, status.status, status.usage):
        group.add_command(command)
    group.add_command(schedules.schedules)
    for command in (webhooks.webhooks, alerts.alerts, secrets.secrets, audit.audit):
        group.add_command(command)
    for command in (approvals.approvals, guardrails.guardrails):
        group.add_command(command)
    for command in (workflows.functions, workflows.events, workflows.runs, workflows.signals):
        group.add_command(command)

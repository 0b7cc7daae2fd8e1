"""`rotor alerts ...`: where terminal job failures are reported."""

from __future__ import annotations

from typing import Any

import click

from rotor_lite.cli.client.context import Session, client_command
from rotor_lite.cli.client.output import Output

__all__ = ["alerts"]


@click.group("alerts")
def alerts() -> None:
    """Show or set the workspace's failure alerts (email, Slack)."""


@alerts.command("get")
@client_command
def get_alerts(session: Session, /) -> None:
    """Show the alert destinations."""
    with session.client() as rotor:
        config = rotor.alerts.get()
    session.output.emit(config, render_alerts)


@alerts.command("set")
@click.option("--email", help="Address that receives an email per failed job (omit to turn email off).")
@click.option("--slack-webhook-url", help="Slack incoming-webhook URL, https://hooks.slack.com/… (omit to turn Slack off).")
@client_command
def set_alerts(session: Session, /, *, email: str | None, slack_webhook_url: str | None) -> None:
    """Set both destinations at once (one not given is turned off)."""
    with session.client() as rotor:
        config = rotor.alerts.set(email=email, slack_webhook_url=slack_webhook_url)
    session.output.emit(config, render_alerts)


def render_alerts(output: Output, config: dict[str, Any]) -> None:
    output.fields([
        ("Email", config.get("email")), ("Slack webhook URL", config.get("slackWebhookUrl")),
        ("SMTP configured", config.get("smtpConfigured")), ("Updated", config.get("updatedAt")),
    ])

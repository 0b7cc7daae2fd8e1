"""`rotor webhooks ...`: lifecycle-event endpoints."""

from __future__ import annotations

from typing import Any

import click

from rotor_lite.cli.client.context import Session, client_command
from rotor_lite.cli.client.output import Output

__all__ = ["webhooks"]


@click.group("webhooks")
def webhooks() -> None:
    """Create, inspect, test and delete webhook endpoints."""


@webhooks.command("create")
@click.option("--url", required=True, help="The endpoint Rotor POSTs signed events to.")
@click.option("--event", "events", multiple=True, required=True, metavar="TYPE",
              help="An event type to receive (job.completed, job.failed, …); repeat for several, or comma-separate.")
@client_command
def create_webhook(session: Session, /, *, url: str, events: tuple[str, ...]) -> None:
    """Register an endpoint; prints its signing secret once."""
    event_types = [e.strip() for item in events for e in item.split(",") if e.strip()]
    with session.client() as rotor:
        created = rotor.webhooks.create(url, event_types)

    def render(out: Output, hook: dict[str, Any]) -> None:
        out.line(f"Created webhook {hook.get('id')}.")
        render_webhook(out, hook)
        out.line()
        out.line(f"Signing secret: {hook.get('secret')}", style="bold yellow")
        out.line("Copy this — it's shown once.", style="yellow")

    session.output.emit(created, render)


@webhooks.command("list")
@client_command
def list_webhooks(session: Session, /) -> None:
    """List the workspace's endpoints."""
    with session.client() as rotor:
        response = rotor.webhooks.list()

    def render(out: Output, data: dict[str, Any]) -> None:
        items = data.get("data") or []
        if not items:
            out.line("No webhooks yet. Create one with: rotor webhooks create --url URL --event job.failed")
            return
        out.table(["ID", "URL", "EVENTS", "ENABLED", "CREATED"],
                  ([h.get("id"), h.get("url"), ", ".join(h.get("eventTypes") or []), h.get("enabled"),
                    h.get("createdAt")] for h in items))

    session.output.emit(response, render)


@webhooks.command("get")
@click.argument("webhook_id")
@client_command
def get_webhook(session: Session, /, *, webhook_id: str) -> None:
    """Show endpoint WEBHOOK_ID."""
    with session.client() as rotor:
        hook = rotor.webhooks.get(webhook_id)
    session.output.emit(hook, render_webhook)


@webhooks.command("update")
@click.argument("webhook_id")
@click.option("--url", help="A new endpoint URL.")
@click.option("--event", "events", multiple=True, metavar="TYPE", help="Replace the event types (repeatable).")
@client_command
def update_webhook(session: Session, /, *, webhook_id: str, url: str | None, events: tuple[str, ...]) -> None:
    """Change endpoint WEBHOOK_ID; this also re-enables an endpoint disabled after failing for days."""
    event_types = [e.strip() for item in events for e in item.split(",") if e.strip()] or None
    with session.client() as rotor:
        hook = rotor.webhooks.update(webhook_id, url=url, event_types=event_types)
    session.output.emit(hook, render_webhook)


@webhooks.command("delete")
@click.argument("webhook_id")
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@client_command
def delete_webhook(session: Session, /, *, webhook_id: str, force: bool) -> None:
    """Delete endpoint WEBHOOK_ID (deliveries not yet sent are dropped)."""
    if not force:
        click.confirm(f"Delete webhook {webhook_id}?", abort=True, err=True)
    with session.client() as rotor:
        rotor.webhooks.delete(webhook_id)
    session.output.emit({"id": webhook_id, "deleted": True}, lambda out, _: out.line(f"Deleted webhook {webhook_id}."))


@webhooks.command("test")
@click.argument("webhook_id")
@client_command
def test_webhook(session: Session, /, *, webhook_id: str) -> None:
    """Send a signed webhook.test event to endpoint WEBHOOK_ID."""
    with session.client() as rotor:
        delivery = rotor.webhooks.test(webhook_id)
    session.output.emit(delivery, lambda out, d: out.line(
        f"Queued webhook.test as {d.get('id')}; see `rotor webhooks deliveries {webhook_id}`."
    ))


@webhooks.command("rotate-secret")
@click.argument("webhook_id")
@client_command
def rotate_secret(session: Session, /, *, webhook_id: str) -> None:
    """Mint a new signing secret for WEBHOOK_ID (the old one keeps verifying for 24 h)."""
    with session.client() as rotor:
        rotated = rotor.webhooks.rotate_secret(webhook_id)

    def render(out: Output, data: dict[str, Any]) -> None:
        out.line(f"New signing secret: {data.get('secret')}", style="bold yellow")
        out.line("Copy this — it's shown once. The previous secret keeps verifying until "
                 f"{data.get('previousSecretExpiresAt')}.", style="yellow")

    session.output.emit(rotated, render)


@webhooks.command("deliveries")
@click.argument("webhook_id")
@click.option("--status", type=click.Choice(["pending", "succeeded", "failed"]), help="Only deliveries in this state.")
@click.option("--limit", type=click.IntRange(1, 500), help="Deliveries per page (default 50).")
@click.option("--cursor", help="The nextCursor of the previous page.")
@client_command
def deliveries(session: Session, /, *, webhook_id: str, status: str | None, limit: int | None, cursor: str | None) -> None:
    """The delivery log of WEBHOOK_ID, newest first."""
    with session.client() as rotor:
        page = rotor.webhooks.deliveries(webhook_id, status=status, limit=limit, cursor=cursor)

    def render(out: Output, data: dict[str, Any]) -> None:
        rows = data.get("data") or []
        if not rows:
            out.line("No deliveries.")
            return
        out.table(["ID", "EVENT", "STATUS", "ATTEMPTS", "RESPONSE", "NEXT ATTEMPT", "CREATED"],
                  ([d.get("id"), d.get("eventType"), d.get("status"), d.get("attempts"),
                    d.get("responseStatus") or d.get("lastError"), d.get("nextAttemptAt"), d.get("createdAt")]
                   for d in rows))
        out.next_page(data)

    session.output.emit(page, render)


@webhooks.command("redeliver")
@click.argument("webhook_id")
@click.argument("message_id")
@client_command
def redeliver(session: Session, /, *, webhook_id: str, message_id: str) -> None:
    """Send delivery MESSAGE_ID of WEBHOOK_ID again."""
    with session.client() as rotor:
        delivery = rotor.webhooks.redeliver(webhook_id, message_id)
    session.output.emit(delivery, lambda out, d: out.line(f"Delivery {d.get('id')} queued again."))


def render_webhook(output: Output, hook: dict[str, Any]) -> None:
    """An endpoint's fields."""
    output.fields([
        ("ID", hook.get("id")), ("URL", hook.get("url")), ("Events", ", ".join(hook.get("eventTypes") or [])),
        ("Enabled", hook.get("enabled")), ("Disabled at", hook.get("disabledAt")), ("Created", hook.get("createdAt")),
    ])

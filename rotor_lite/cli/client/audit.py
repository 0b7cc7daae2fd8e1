"""`rotor audit`: the workspace's audit log, as a table or streamed as CSV."""

from __future__ import annotations

from typing import Any

import click

from rotor_lite.cli.client.context import Session, client_command
from rotor_lite.cli.client.output import Output
from rotor_lite.sdk._request import APIRequest, compact

__all__ = ["audit"]


@click.command("audit")
@click.option("--event-type", help="Only this event type, e.g. secret.accessed.")
@click.option("--resource-type", help="Only this resource type, e.g. secret.")
@click.option("--from", "from_", metavar="TIME", help="Events at or after this ISO 8601 time.")
@click.option("--to", metavar="TIME", help="Events before this ISO 8601 time.")
@click.option("--limit", type=click.IntRange(1, 500), help="Events per page (default 50).")
@click.option("--cursor", help="The nextCursor of the previous page.")
@click.option("--csv", "as_csv", is_flag=True, help="Stream every matching event as CSV (oldest first).")
@client_command
def audit(
    session: Session, /, *, event_type: str | None, resource_type: str | None, from_: str | None, to: str | None,
    limit: int | None, cursor: str | None, as_csv: bool,
) -> None:
    """Show the audit log, newest first."""
    filters = compact({"event_type": event_type, "resource_type": resource_type, "from": from_, "to": to})
    with session.client() as rotor:
        if as_csv:
            for chunk in rotor.iter_text(APIRequest("GET", "/v1/audit", params=filters | {"format": "csv"})):
                click.echo(chunk, nl=False)
            return
        page = rotor.audit.list(event_type=event_type, resource_type=resource_type, from_=from_, to=to,
                                limit=limit, cursor=cursor)
    session.output.emit(page, render_events)


def render_events(output: Output, page: dict[str, Any]) -> None:
    rows = page.get("data") or []
    if not rows:
        output.line("No audit events.")
        return
    output.table(["TIME", "EVENT", "ACTOR", "RESOURCE", "IP"],
                 ([e.get("occurred_at"), e.get("event_type"), e.get("actor_id"),
                   f"{e.get('resource_type') or ''} {e.get('resource_id') or ''}".strip(), e.get("ip_address")]
                  for e in rows))
    output.next_page(page)

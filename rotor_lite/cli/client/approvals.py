"""`rotor approvals ...`: review the jobs waiting for a human decision, approve or reject them."""

from __future__ import annotations

import json
from typing import Any

import click

from rotor_lite.cli.client.context import Session, client_command
from rotor_lite.cli.client.output import Output

__all__ = ["approvals", "payload_preview"]

PREVIEW_CHARS = 60


@click.group("approvals")
def approvals() -> None:
    """Review, approve and reject jobs of queues that require approval."""


@approvals.command("list")
@click.option("--status", type=click.Choice(["pending", "approved", "rejected"]), help="Only approvals in this status.")
@click.option("--queue", help="Only approvals of this queue.")
@click.option("--limit", type=click.IntRange(1, 500), help="Approvals per page (default 50).")
@click.option("--cursor", help="Page cursor printed by the previous call.")
@client_command
def list_approvals(session: Session, /, **filters: Any) -> None:
    """List approvals, newest first, with a short preview of each payload."""
    with session.client() as rotor:
        page = rotor.approvals.list(**filters)
    session.output.emit(page, render_approval_table)


@approvals.command("get")
@click.argument("approval_id")
@client_command
def get_approval(session: Session, /, *, approval_id: str) -> None:
    """Show approval APPROVAL_ID with the full payload under review."""
    with session.client() as rotor:
        approval = rotor.approvals.get(approval_id)
    session.output.emit(approval, render_approval)


@approvals.command("approve")
@click.argument("approval_id")
@client_command
def approve(session: Session, /, *, approval_id: str) -> None:
    """Approve APPROVAL_ID: its job goes on to the callback handler."""
    with session.client() as rotor:
        approval = rotor.approvals.approve(approval_id)
    session.output.emit(approval, lambda out, a: out.line(f"Approved {approval_id}: job {a.get('jobId')} is waiting."))


@approvals.command("reject")
@click.argument("approval_id")
@click.option("--reason", help="Why (kept on the approval and sent with the approval.rejected webhook).")
@client_command
def reject(session: Session, /, *, approval_id: str, reason: str | None) -> None:
    """Reject APPROVAL_ID: its job is failed ("rejected") and never retried."""
    with session.client() as rotor:
        approval = rotor.approvals.reject(approval_id, reason)
    session.output.emit(approval, lambda out, a: out.line(f"Rejected {approval_id}: job {a.get('jobId')} failed (rejected)."))


def payload_preview(payload: Any, width: int = PREVIEW_CHARS) -> str:
    """The payload as compact JSON on one line, cut to `width` characters."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def render_approval_table(output: Output, page: dict[str, Any]) -> None:
    """The `approvals list` table: ID, QUEUE, JOB, STATUS, CREATED, PAYLOAD."""
    items = page.get("approvals") or []
    if not items:
        output.line("No approvals found.")
    else:
        output.table(
            ["ID", "QUEUE", "JOB", "STATUS", "CREATED", "PAYLOAD"],
            (
                [a.get("id"), a.get("queueName"), a.get("jobId"), a.get("status"), a.get("createdAt"),
                 payload_preview(a.get("payload"))]
                for a in items
            ),
        )
    output.next_page(page)


def render_approval(output: Output, approval: dict[str, Any]) -> None:
    """An approval's fields, then its payload."""
    output.fields([
        ("ID", approval.get("id")), ("Status", approval.get("status")), ("Queue", approval.get("queueName")),
        ("Job", approval.get("jobId")), ("Created", approval.get("createdAt")), ("Decided", approval.get("decidedAt")),
        ("Decided by", approval.get("decidedBy")), ("Reason", approval.get("reason")),
    ])
    output.block("Payload", approval.get("payload"))

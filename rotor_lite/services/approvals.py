"""Approvals: the human gate of queues with `approval_required`.

An approval is opened in the transaction that admits its job (after the guardrails), and
decided here: approve → the job is `waiting`; reject → the job is `failed` with
`failReason: "rejected"` and is never retried. Cancelling the job closes its approval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from rotor_lite.clock import iso_from_ms
from rotor_lite.errors import Conflict, NotFound, ValidationError
from rotor_lite.ids import new_id
from rotor_lite.models import Job, JobState, Principal, Queue
from rotor_lite.services import audit
from rotor_lite.services.core import Core
from rotor_lite.services.paging import decode_cursor, encode_cursor
from rotor_lite.store import approvals as approval_store
from rotor_lite.store.approvals import ApprovalRow
from rotor_lite.store.contract import Conn

STATUSES = ("pending", "approved", "rejected")
MAX_REASON = 2000
CANCELLED_REASON = "job cancelled"


def record_audit(
    conn: Conn, workspace_id: str, event_type: str, *, actor: str, now: int, resource_type: str,
    resource_id: str | None, metadata: Mapping[str, Any] | None = None,
) -> None:
    """Record an approval or guardrail audit event in the caller's transaction (the one place both call)."""
    audit.record(conn, audit.audit_event(
        workspace_id, event_type, actor=actor, now=now, resource_type=resource_type, resource_id=resource_id,
        metadata=metadata,
    ))


def approval_out(row: ApprovalRow) -> dict[str, Any]:
    """The API shape of an approval."""
    return {
        "id": row.id, "jobId": row.job_id, "queueName": row.queue_name, "payload": msgspec.Raw(row.payload),
        "status": row.status, "createdAt": iso_from_ms(row.created_at), "decidedAt": iso_from_ms(row.decided_at),
        "decidedBy": row.decided_by, "reason": row.reason,
    }


# Opening and closing (inside other operations' transactions) ----------------------------------


def open_approvals(core: Core, conn: Conn, queue: Queue, jobs: Sequence[Job], now: int) -> None:
    """One pending approval per job (already `pending_approval`), and an `approval.pending` event each."""
    rows = [
        ApprovalRow(
            id=new_id("apv", now), workspace_id=queue.workspace_id, queue_id=queue.rowid, queue_name=queue.name,
            job_id=job.id, payload=job.payload, created_at=now,
        )
        for job in jobs
    ]
    approval_store.insert_approvals(conn, rows)
    for job, row in zip(jobs, rows):
        job.approval_id = row.id
        core.events.emit(conn, queue.workspace_id, "approval.pending", {
            "approvalId": row.id, "jobId": job.id, "queueName": queue.name, "payload": msgspec.Raw(row.payload),
            "workspaceId": queue.workspace_id,
        })


def close_for_cancelled_job(core: Core, conn: Conn, job: Job, actor: str, now: int) -> None:
    """A cancelled `pending_approval` job's approval becomes rejected ("job cancelled")."""
    if job.state != JobState.PENDING_APPROVAL:
        return
    row = approval_store.pending_of_job(conn, job.queue_id, job.id)
    if row is not None and approval_store.decide(conn, row.rowid, "rejected", now, actor, CANCELLED_REASON):
        _decided(core, conn, row, "rejected", actor, CANCELLED_REASON, now)


def _decided(
    core: Core, conn: Conn, row: ApprovalRow, status: str, actor: str, reason: str | None, now: int
) -> None:
    event_type = f"approval.{status}"
    data = {"approvalId": row.id, "jobId": row.job_id, "queueName": row.queue_name, "decidedBy": actor, "reason": reason}
    core.events.emit(conn, row.workspace_id, event_type, data)
    record_audit(
        conn, row.workspace_id, event_type, actor=actor, now=now, resource_type="approval", resource_id=row.id,
        metadata={"jobId": row.job_id, "queueName": row.queue_name, "reason": reason},
    )


# Operations --------------------------------------------------------------------------------------


async def list_approvals(
    core: Core, principal: Principal, *, status: str | None, queue_name: str | None, limit: int, cursor: str | None
) -> tuple[list[ApprovalRow], str | None]:
    """Approvals of the workspace (or of one queue), newest first."""
    if status is not None and status not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}", field="status")
    queue_name = queue_name or principal.queue_name
    queue_rowid = core.queue_for(principal, queue_name).rowid if queue_name else None
    rows = await approval_store.list_approvals(
        core.db, principal.workspace_id, status=status, queue_rowid=queue_rowid, before_rowid=decode_cursor(cursor),
        limit=limit + 1,
    )
    next_cursor = encode_cursor(rows[limit - 1].rowid) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def get_approval(core: Core, principal: Principal, approval_id: str) -> ApprovalRow:
    """One approval of the caller's workspace (and queue, for a queue-scoped key)."""
    row = await approval_store.get_approval(core.db, principal.workspace_id, approval_id)
    return _visible(principal, row, approval_id)


def _visible(principal: Principal, row: ApprovalRow | None, approval_id: str) -> ApprovalRow:
    if row is None or principal.queue_name not in (None, row.queue_name):
        raise NotFound(f"approval '{approval_id}' not found", {"approvalId": approval_id})
    return row


async def approve(core: Core, principal: Principal, approval_id: str) -> ApprovalRow:
    """pending → approved; the job becomes `waiting` (or `delayed` until its run time)."""
    row = await _decide(core, principal, approval_id, "approved", None)
    core.on_jobs_ready()
    return row


async def reject(core: Core, principal: Principal, approval_id: str, reason: str | None) -> ApprovalRow:
    """pending → rejected; the job becomes `failed` with `failReason: "rejected"`, never retried."""
    if reason is not None and len(reason) > MAX_REASON:
        raise ValidationError(f"reason must be at most {MAX_REASON} characters", field="reason")
    return await _decide(core, principal, approval_id, "rejected", reason or None)


async def _decide(core: Core, principal: Principal, approval_id: str, status: str, reason: str | None) -> ApprovalRow:
    now = core.clock.now_ms()

    def write(conn: Conn) -> ApprovalRow:
        row = _visible(principal, approval_store.approval_for_update(conn, principal.workspace_id, approval_id), approval_id)
        if row.status != "pending":
            raise Conflict(f"approval '{approval_id}' is already {row.status}", {"approvalId": approval_id, "status": row.status})
        change = approval_store.release_approved_job if status == "approved" else approval_store.fail_rejected_job
        if not change(conn, row.queue_id, row.job_id, now):
            raise Conflict(f"the job of approval '{approval_id}' is no longer pending approval", {"jobId": row.job_id})
        approval_store.decide(conn, row.rowid, status, now, principal.key_id, reason)
        _decided(core, conn, row, status, principal.key_id, reason, now)
        return msgspec.structs.replace(row, status=status, decided_at=now, decided_by=principal.key_id, reason=reason)

    return await core.db.write(write)

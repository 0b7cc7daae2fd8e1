"""Approval rows, and the job-state changes an approval decision makes.

Functions taking a `Conn` run inside the writer's transaction;
functions taking a `Database` read through the reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from rotor_lite.models import JobState
from rotor_lite.store import counts
from rotor_lite.store.db import Database, conditions
from rotor_lite.store.contract import Conn

_COLUMNS = (
    "rowid, id, workspace_id, queue_id, queue_name, job_id, payload, status, created_at, decided_at, decided_by, reason"
)


class ApprovalRow(msgspec.Struct, kw_only=True):
    """One approval record; `payload` is the job payload it was opened for (JSON bytes)."""

    rowid: int = 0
    id: str
    workspace_id: str
    queue_id: int
    queue_name: str
    job_id: str
    payload: bytes
    status: str = "pending"
    created_at: int
    decided_at: int | None = None
    decided_by: str | None = None
    reason: str | None = None


def _from_row(row: Sequence[Any]) -> ApprovalRow:
    return ApprovalRow(
        rowid=row[0], id=row[1], workspace_id=row[2], queue_id=row[3], queue_name=row[4], job_id=row[5],
        payload=bytes(row[6]), status=row[7], created_at=row[8], decided_at=row[9], decided_by=row[10], reason=row[11],
    )


def insert_approvals(conn: Conn, rows: Sequence[ApprovalRow]) -> None:
    """Open approvals and point each job at its approval."""
    conn.executemany(
        "INSERT INTO approval (id, workspace_id, queue_id, queue_name, job_id, payload, status, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
        [(r.id, r.workspace_id, r.queue_id, r.queue_name, r.job_id, r.payload, r.created_at) for r in rows],
    )
    conn.executemany(
        "UPDATE job SET approval_id = ? WHERE queue_id = ? AND id = ?", [(r.id, r.queue_id, r.job_id) for r in rows]
    )


def approval_for_update(conn: Conn, workspace_id: str, approval_id: str) -> ApprovalRow | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM approval WHERE id = ? AND workspace_id = ?", (approval_id, workspace_id)
    ).fetchone()
    return None if row is None else _from_row(row)


def pending_of_job(conn: Conn, queue_rowid: int, job_id: str) -> ApprovalRow | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM approval WHERE queue_id = ? AND job_id = ? AND status = 'pending'",
        (queue_rowid, job_id),
    ).fetchone()
    return None if row is None else _from_row(row)


def decide(conn: Conn, rowid: int, status: str, now: int, actor: str, reason: str | None) -> bool:
    """pending → approved or rejected; False when it was already decided."""
    return conn.execute(
        "UPDATE approval SET status = ?, decided_at = ?, decided_by = ?, reason = ? WHERE rowid = ? AND status = 'pending'",
        (status, now, actor, reason, rowid),
    ).rowcount == 1


def release_approved_job(conn: Conn, queue_rowid: int, job_id: str, now: int) -> int:
    """pending_approval → waiting (or delayed until its run_at); returns the rows changed."""
    row = conn.execute(
        "UPDATE job SET state = CASE WHEN run_at > ? THEN 'delayed' ELSE 'waiting' END"
        " WHERE queue_id = ? AND id = ? AND state = 'pending_approval' RETURNING state",
        (now, queue_rowid, job_id),
    ).fetchone()
    if row is None:
        return 0
    counts.move(conn, queue_rowid, JobState.PENDING_APPROVAL, row[0], 1)
    return 1


def fail_rejected_job(conn: Conn, queue_rowid: int, job_id: str, now: int) -> int:
    """pending_approval → failed with `failReason: "rejected"`; returns the rows changed."""
    changed = conn.execute(
        "UPDATE job SET state = 'failed', fail_reason = 'rejected', finished_at = ?"
        " WHERE queue_id = ? AND id = ? AND state = 'pending_approval'",
        (now, queue_rowid, job_id),
    ).rowcount
    counts.move(conn, queue_rowid, JobState.PENDING_APPROVAL, JobState.FAILED, changed)
    return changed


async def get_approval(db: Database, workspace_id: str, approval_id: str) -> ApprovalRow | None:
    row = await db.fetchone(
        f"SELECT {_COLUMNS} FROM approval WHERE id = ? AND workspace_id = ?", (approval_id, workspace_id)
    )
    return None if row is None else _from_row(row)


async def list_approvals(
    db: Database, workspace_id: str, *, status: str | None, queue_rowid: int | None, before_rowid: int | None,
    limit: int,
) -> list[ApprovalRow]:
    """Approvals of the workspace (or of one queue), newest first."""
    where, params = conditions(
        ("workspace_id = ?", workspace_id), ("status = ?", status), ("queue_id = ?", queue_rowid),
        ("rowid < ?", before_rowid),
    )
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM approval WHERE {where} ORDER BY rowid DESC LIMIT ?", [*params, limit]
    )
    return [_from_row(row) for row in rows]

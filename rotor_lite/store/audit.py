"""Audit rows: append (the table refuses updates and deletes), page, and stream in batches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec

from rotor_lite.store.db import Database, conditions
from rotor_lite.store.contract import Conn

COLUMNS = (
    "rowid, id, workspace_id, event_type, actor_id, resource_type, resource_id, metadata, occurred_at, ip_address"
)


class AuditRow(msgspec.Struct, kw_only=True, frozen=True):
    """One audit event as stored; `metadata` is its JSON text."""

    rowid: int = 0
    id: str
    workspace_id: str
    event_type: str
    actor_id: str
    resource_type: str | None
    resource_id: str | None
    metadata: str
    occurred_at: int
    ip_address: str | None


class AuditFilter(msgspec.Struct, kw_only=True, frozen=True):
    """What `GET /v1/audit` narrows by; None means any."""

    event_type: str | None = None
    resource_type: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None


def from_row(row: Sequence[Any]) -> AuditRow:
    return AuditRow(
        rowid=row[0], id=row[1], workspace_id=row[2], event_type=row[3], actor_id=row[4], resource_type=row[5],
        resource_id=row[6], metadata=row[7], occurred_at=row[8], ip_address=row[9],
    )


def insert(conn: Conn, events: Sequence[AuditRow]) -> None:
    """Append events in the caller's transaction."""
    conn.executemany(
        "INSERT INTO audit_event (id, workspace_id, event_type, actor_id, resource_type, resource_id, metadata,"
        " occurred_at, ip_address) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (e.id, e.workspace_id, e.event_type, e.actor_id, e.resource_type, e.resource_id, e.metadata,
             e.occurred_at, e.ip_address)
            for e in events
        ],
    )


def _filters(workspace_id: str, filters: AuditFilter) -> tuple[tuple[str, Any], ...]:
    return (
        ("workspace_id = ?", workspace_id), ("event_type = ?", filters.event_type),
        ("resource_type = ?", filters.resource_type), ("occurred_at >= ?", filters.from_ms),
        ("occurred_at < ?", filters.to_ms),
    )


def prune(conn: Conn, before: int, limit: int = 500) -> dict[str, int]:
    """Delete up to `limit` events that occurred before `before`; returns the rows deleted, nothing when none
    was due. The table's trigger refuses to delete an event younger than 365 days."""
    deleted = conn.execute(
        "DELETE FROM audit_event WHERE rowid IN (SELECT rowid FROM audit_event WHERE occurred_at < ?"
        " ORDER BY occurred_at LIMIT ?)",
        (before, limit),
    ).rowcount
    return {"audit_events": deleted} if deleted else {}


async def page(
    db: Database, workspace_id: str, filters: AuditFilter, *, before_rowid: int | None, limit: int
) -> list[AuditRow]:
    """Newest first, starting below `before_rowid`."""
    where, params = conditions(*_filters(workspace_id, filters), ("rowid < ?", before_rowid))
    rows = await db.fetchall(
        f"SELECT {COLUMNS} FROM audit_event WHERE {where} ORDER BY rowid DESC LIMIT ?", [*params, limit]
    )
    return [from_row(row) for row in rows]


async def stream(db: Database, workspace_id: str, filters: AuditFilter, batch: int = 1000) -> AsyncIterator[list[AuditRow]]:
    """Every matching event, oldest first, `batch` rows at a time (keyset paging: memory stays flat)."""
    after = 0
    where, params = conditions(*_filters(workspace_id, filters))
    sql = f"SELECT {COLUMNS} FROM audit_event WHERE {where} AND rowid > ? ORDER BY rowid LIMIT ?"
    while True:
        rows = await db.fetchall(sql, [*params, after, batch])
        if not rows:
            return
        yield [from_row(row) for row in rows]
        after = rows[-1][0]

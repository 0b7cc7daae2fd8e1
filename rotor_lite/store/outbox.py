"""The outbox (events written with the state change that caused them) and the deliveries fanned out from it.

An event row lives only until the delivery task fans it out into one `delivery` row per
destination (a subscribed webhook endpoint, a Slack or email alert) in one transaction.
A delivery is `pending` until it succeeds (`succeeded`) or runs out of attempts (`failed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from rotor_lite.store.db import Database, conditions
from rotor_lite.store.contract import Conn, is_postgres

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
_DELIVERY_COLUMNS = (
    "rowid, id, workspace_id, channel, webhook_id, event_type, body, status, attempts, next_attempt_at,"
    " last_attempt_at, response_status, last_error, created_at"
)


class OutboxEvent(msgspec.Struct, kw_only=True, frozen=True):
    """An event waiting to be fanned out; `target` limits it to one webhook (a test event)."""

    rowid: int = 0
    id: str
    workspace_id: str
    event_type: str
    data: bytes
    target: str | None
    created_at: int


class DeliveryRow(msgspec.Struct, kw_only=True):
    """One message to one destination and how its delivery is going."""

    rowid: int = 0
    id: str
    workspace_id: str
    channel: str
    webhook_id: str | None
    event_type: str
    body: bytes
    status: str = PENDING
    attempts: int = 0
    next_attempt_at: int | None
    last_attempt_at: int | None = None
    response_status: int | None = None
    last_error: str | None = None
    created_at: int


def _delivery(row: Sequence[Any]) -> DeliveryRow:
    return DeliveryRow(
        rowid=row[0], id=row[1], workspace_id=row[2], channel=row[3], webhook_id=row[4], event_type=row[5],
        body=bytes(row[6]), status=row[7], attempts=row[8], next_attempt_at=row[9], last_attempt_at=row[10],
        response_status=row[11], last_error=row[12], created_at=row[13],
    )


# Events --------------------------------------------------------------------------------


def append_event(conn: Conn, event: OutboxEvent) -> None:
    """Write an event in the caller's transaction."""
    conn.execute(
        "INSERT INTO outbox (id, workspace_id, event_type, data, target, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (event.id, event.workspace_id, event.event_type, event.data, event.target, event.created_at),
    )


_EVENT_COLUMNS = "rowid, id, workspace_id, event_type, data, target, created_at"
# Several nodes: each takes rows no other node holds, and exactly the rows it read. A sequence value is
# drawn before its row commits, so `rowid <= last seen` would also delete a later-committing row unseen.
# The locked rows are picked once, in a CTE (as an `IN (subquery)` PostgreSQL may run it again per row).
_TAKE_PG = (
    "WITH picked AS (SELECT rowid FROM outbox ORDER BY rowid LIMIT ? FOR UPDATE SKIP LOCKED)"
    " DELETE FROM outbox USING picked WHERE outbox.rowid = picked.rowid"
    f" RETURNING {', '.join('outbox.' + c for c in _EVENT_COLUMNS.split(', '))}"
)


def take_events(conn: Conn, limit: int) -> list[OutboxEvent]:
    """The oldest `limit` events, removed from the outbox (the caller fans them out in the same transaction)."""
    if is_postgres(conn):
        rows = sorted(conn.execute(_TAKE_PG, (limit,)).fetchall(), key=lambda r: int(r[0]))
    else:  # one writer: what the SELECT saw is all there is up to its last rowid
        rows = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM outbox ORDER BY rowid LIMIT ?", (limit,)).fetchall()
        if rows:
            conn.execute("DELETE FROM outbox WHERE rowid <= ?", (rows[-1][0],))
    return [
        OutboxEvent(rowid=r[0], id=r[1], workspace_id=r[2], event_type=r[3], data=bytes(r[4]), target=r[5],
                    created_at=r[6])
        for r in rows
    ]


# Deliveries ------------------------------------------------------------------------------


def insert_deliveries(conn: Conn, rows: Sequence[DeliveryRow]) -> None:
    conn.executemany(
        "INSERT INTO delivery (id, workspace_id, channel, webhook_id, event_type, body, status, attempts,"
        " next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (d.id, d.workspace_id, d.channel, d.webhook_id, d.event_type, d.body, d.status, d.attempts,
             d.next_attempt_at, d.created_at)
            for d in rows
        ],
    )


_DUE = (
    " FROM delivery AS d LEFT JOIN webhook AS w ON w.id = d.webhook_id"
    " WHERE d.status = 'pending' AND (d.webhook_id IS NULL OR w.enabled = 1)"
)


async def due_deliveries(
    db: Database, now: int, limit: int, *, exclude: Sequence[str] = (), only: Sequence[str] | None = None
) -> list[DeliveryRow]:
    """Pending deliveries whose time has come (never those of a disabled endpoint), oldest due first.

    `exclude` leaves out these endpoints' deliveries; `only` keeps nothing but theirs.
    """
    columns = ", ".join(f"d.{c.strip()}" for c in _DELIVERY_COLUMNS.split(","))
    where, params = _endpoint_filter(exclude, only)
    rows = await db.fetchall(
        f"SELECT {columns}{_DUE}{where} AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at, d.rowid LIMIT ?",
        (*params, now, limit),
    )
    return [_delivery(row) for row in rows]


async def next_due_at(db: Database, exclude: Sequence[str] = ()) -> int | None:
    where, params = _endpoint_filter(exclude, None)
    row = await db.fetchone(f"SELECT min(d.next_attempt_at){_DUE}{where}", params)
    return None if row is None or row[0] is None else int(row[0])


def claim_deliveries(conn: Conn, rowids: Sequence[int], now: int, lease_until: int) -> set[int]:
    """Of these due deliveries, the rowids this node may send now (several nodes on PostgreSQL).

    The claim pushes `next_attempt_at` to `lease_until`: no other node sees them due meanwhile, and a
    node that dies mid-send leaves them due again once the lease runs out. The outcome (`record_attempt`)
    then sets the real next attempt. Rows another node claimed first are left out.
    """
    rows = conn.execute(
        "WITH picked AS (SELECT rowid FROM delivery WHERE rowid IN (SELECT value FROM json_each(?))"
        " AND status = 'pending' AND next_attempt_at <= ? FOR UPDATE SKIP LOCKED)"
        " UPDATE delivery SET next_attempt_at = ? FROM picked WHERE delivery.rowid = picked.rowid"
        " AND delivery.status = 'pending' AND delivery.next_attempt_at <= ? RETURNING delivery.rowid",
        (msgspec.json.encode(list(rowids)).decode(), now, lease_until, now),
    ).fetchall()
    return {int(row[0]) for row in rows}


def _endpoint_filter(exclude: Sequence[str], only: Sequence[str] | None) -> tuple[str, tuple[str, ...]]:
    if only is not None:
        return f" AND d.webhook_id IN ({','.join('?' * len(only))})", tuple(only)
    if exclude:
        return f" AND (d.webhook_id IS NULL OR d.webhook_id NOT IN ({','.join('?' * len(exclude))}))", tuple(exclude)
    return "", ()


def record_attempt(conn: Conn, delivery: DeliveryRow, previous_attempts: int) -> bool:
    """Write back the outcome of an attempt, unless the delivery was deleted or redelivered meanwhile."""
    cursor = conn.execute(
        "UPDATE delivery SET status = ?, attempts = ?, next_attempt_at = ?, last_attempt_at = ?,"
        " response_status = ?, last_error = ? WHERE rowid = ? AND status = 'pending' AND attempts = ?",
        (
            delivery.status, delivery.attempts, delivery.next_attempt_at, delivery.last_attempt_at,
            delivery.response_status, delivery.last_error, delivery.rowid, previous_attempts,
        ),
    )
    return cursor.rowcount > 0


def redeliver(conn: Conn, webhook_id: str, message_id: str, now: int) -> DeliveryRow | None:
    """Send a delivery again with a fresh schedule; it keeps its message id and body."""
    row = conn.execute(
        f"UPDATE delivery SET status = 'pending', attempts = 0, next_attempt_at = ? WHERE webhook_id = ? AND id = ?"
        f" RETURNING {_DELIVERY_COLUMNS}",
        (now, webhook_id, message_id),
    ).fetchone()
    return None if row is None else _delivery(row)


async def list_for_webhook(
    db: Database, webhook_id: str, *, status: str | None, before_rowid: int | None, limit: int
) -> list[DeliveryRow]:
    """The endpoint's deliveries, newest first."""
    where, params = conditions(("webhook_id = ?", webhook_id), ("status = ?", status), ("rowid < ?", before_rowid))
    rows = await db.fetchall(
        f"SELECT {_DELIVERY_COLUMNS} FROM delivery WHERE {where} ORDER BY rowid DESC LIMIT ?", [*params, limit]
    )
    return [_delivery(row) for row in rows]


def prune_finished(conn: Conn, workspace_id: str, before: int, limit: int = 500) -> dict[str, int]:
    """Delete up to `limit` of the workspace's succeeded and failed deliveries created before `before`
    (retention); returns the rows deleted per kind, nothing when none was due."""
    deleted = conn.execute(
        "DELETE FROM delivery WHERE rowid IN (SELECT rowid FROM delivery WHERE workspace_id = ? AND status != 'pending'"
        " AND created_at < ? LIMIT ?)",
        (workspace_id, before, limit),
    ).rowcount
    return {"webhook_deliveries": deleted} if deleted else {}

"""The audit log: append security-relevant events, read them back page by page or as a CSV stream.

The API records every mutating call (api/audit.py); services and the engine record the
events no request carries (`secret.accessed`, `webhook.disabled`, `guardrail.blocked`, …).
Metadata holds ids, names and counts, never a secret value.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

import msgspec

from rotor_lite.clock import iso, iso_from_ms
from rotor_lite.errors import KeyRefused, ValidationError
from rotor_lite.ids import new_id
from rotor_lite.models import Principal
from rotor_lite.services.core import Core
from rotor_lite.services.paging import decode_cursor, encode_cursor
from rotor_lite.store import audit as audit_store
from rotor_lite.store.audit import AuditFilter, AuditRow
from rotor_lite.store.contract import Conn

SYSTEM = "system"
ANONYMOUS = "anonymous"  # the actor of a refused key that matches no key
CSV_COLUMNS = (
    "id", "workspace_id", "event_type", "actor_id", "resource_type", "resource_id", "metadata", "occurred_at",
    "ip_address",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\0")
# The client address of the API request being served (set by the API's audit middleware).
client_ip: ContextVar[str | None] = ContextVar("rotor_client_ip", default=None)


def audit_event(
    workspace_id: str, event_type: str, *, actor: str, now: int, resource_type: str | None = None,
    resource_id: str | None = None, metadata: Mapping[str, Any] | None = None, ip: str | None = None,
) -> AuditRow:
    """A new audit row; `ip` defaults to the current request's client address."""
    return AuditRow(
        id=new_id("evt", now), workspace_id=workspace_id, event_type=event_type, actor_id=actor,
        resource_type=resource_type, resource_id=resource_id,
        metadata=msgspec.json.encode(dict(metadata or {})).decode(), occurred_at=now,
        ip_address=ip if ip is not None else client_ip.get(),
    )


def refused_events(refused: KeyRefused, *, now: int, request: Mapping[str, Any]) -> list[AuditRow]:
    """`auth.failed` in each workspace the refused key traces to; never any of the key but its public prefix."""
    metadata = {"reason": refused.reason, "key_prefix": refused.key_prefix, **request}
    return [
        audit_event(workspace_id, "auth.failed", actor=refused.key_id or ANONYMOUS, now=now,
                    resource_type="api_key", resource_id=refused.key_id, metadata=metadata)
        for workspace_id in refused.workspace_ids
    ]


def forbidden_event(principal: Principal, *, now: int, request: Mapping[str, Any]) -> AuditRow:
    """`auth.forbidden`: the caller's key may not do what it asked."""
    return audit_event(principal.workspace_id, "auth.forbidden", actor=principal.key_id, now=now,
                       metadata={"role": principal.role.value, **request})


def record(conn: Conn, *events: AuditRow) -> None:
    """Append events in the caller's writer transaction."""
    audit_store.insert(conn, events)


async def record_now(core: Core, *events: AuditRow) -> None:
    """Append events in a transaction of their own."""
    await core.db.write(lambda conn: audit_store.insert(conn, events))


def parse_filter(
    event_type: str | None, resource_type: str | None, from_: str | None, to: str | None
) -> AuditFilter:
    """The query's filters, validated."""
    return AuditFilter(
        event_type=event_type or None, resource_type=resource_type or None,
        from_ms=_timestamp(from_, "from"), to_ms=_timestamp(to, "to"),
    )


def _timestamp(text: str | None, field: str) -> int | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationError(f"{field} must be an ISO 8601 timestamp", field=field) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


async def list_events(
    core: Core, principal: Principal, filters: AuditFilter, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the workspace's events, newest first."""
    rows = await audit_store.page(
        core.db, principal.workspace_id, filters, before_rowid=decode_cursor(cursor), limit=limit + 1
    )
    next_cursor = encode_cursor(rows[limit - 1].rowid) if len(rows) > limit else None
    return [event_out(row) for row in rows[:limit]], next_cursor


def event_out(row: AuditRow) -> dict[str, Any]:
    """The API shape of an event (the CSV's columns, `metadata` as an object)."""
    return {
        "id": row.id, "workspace_id": row.workspace_id, "event_type": row.event_type, "actor_id": row.actor_id,
        "resource_type": row.resource_type, "resource_id": row.resource_id,
        "metadata": msgspec.Raw(row.metadata.encode()), "occurred_at": iso_from_ms(row.occurred_at),
        "ip_address": row.ip_address,
    }


async def csv_chunks(core: Core, principal: Principal, filters: AuditFilter) -> AsyncIterator[bytes]:
    """The workspace's events as CSV, oldest first, produced a batch at a time."""
    return _csv(core, principal.workspace_id, filters)


async def _csv(core: Core, workspace_id: str, filters: AuditFilter) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    async for rows in audit_store.stream(core.db, workspace_id, filters):
        writer.writerows(csv_row(r) for r in rows)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def csv_row(r: AuditRow) -> list[str]:
    """One event's cells (CSV_COLUMNS), each safe to open in a spreadsheet."""
    cells = (r.id, r.workspace_id, r.event_type, r.actor_id, r.resource_type or "", r.resource_id or "", r.metadata,
             iso(r.occurred_at), r.ip_address or "")
    return [_as_text(cell) for cell in cells]


def _as_text(cell: str) -> str:
    # A spreadsheet runs a cell starting like a formula; a leading quote makes it text (OWASP, CSV Injection).
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell

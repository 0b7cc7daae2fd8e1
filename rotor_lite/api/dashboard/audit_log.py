"""The audit log: filtered pages, and the same filter exported as CSV."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, get
from litestar.params import Parameter
from litestar.response import Stream, Template

from rotor_lite.api.controllers.audit import list_audit
from rotor_lite.api.dashboard.access import mirror
from rotor_lite.api.dashboard.render import PAGE_SIZE, page
from rotor_lite.api.http import core_of
from rotor_lite.models import Principal
from rotor_lite.services import audit

# Suggestions for the event type filter (any type can be typed).
COMMON_TYPES = (
    "auth.failed", "auth.forbidden", "api_key.created", "api_key.revoked", "api_key.rotated", "approval.approved",
    "approval.rejected", "job.cancelled", "job.retried", "queue.created", "queue.paused", "queue.resumed",
    "queue.drained", "queue.retried_all", "run.cancelled", "run.replayed", "schedule.fired", "schedule.updated",
    "secret.created", "secret.rotated", "secret.deleted", "signal.completed", "webhook.tested",
)


@get("/audit", opt=mirror(list_audit))
async def audit_page(
    request: Request[Any, Any, Any], principal: Principal, event_type: str | None = None,
    resource_type: str | None = None, since: Annotated[str | None, Parameter(query="from")] = None,
    until: Annotated[str | None, Parameter(query="to")] = None, cursor: str | None = None,
) -> Template:
    """Events newest first, filtered by type, resource type and time (UTC); a link exports the filter as CSV."""
    filters = audit.parse_filter(event_type, resource_type, since, until)
    events, next_cursor = await audit.list_events(core_of(request), principal, filters, limit=PAGE_SIZE, cursor=cursor)
    shown = {"event_type": event_type or "", "resource_type": resource_type or "", "from": since or "", "to": until or ""}
    return page(
        request, principal, "audit.html", events=events, filters=shown, types=COMMON_TYPES,
        export=urlencode(shown), more=urlencode({**shown, "cursor": next_cursor}) if next_cursor else None,
    )


@get("/audit.csv", opt=mirror(list_audit))
async def audit_csv(
    request: Request[Any, Any, Any], principal: Principal, event_type: str | None = None,
    resource_type: str | None = None, since: Annotated[str | None, Parameter(query="from")] = None,
    until: Annotated[str | None, Parameter(query="to")] = None,
) -> Stream:
    """Every event the filter matches, oldest first, as the API's CSV export."""
    filters = audit.parse_filter(event_type, resource_type, since, until)
    return Stream(
        await audit.csv_chunks(core_of(request), principal, filters), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )



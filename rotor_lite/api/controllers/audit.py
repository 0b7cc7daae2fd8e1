"""`GET /v1/audit`: the workspace's audit log as JSON pages, or the whole of it as a CSV stream."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.params import Parameter
from litestar.response import Stream

from rotor_lite.api.auth import READ
from rotor_lite.api.http import core_of, json_response, page_limit
from rotor_lite.errors import ValidationError
from rotor_lite.models import Principal
from rotor_lite.schemas import Page
from rotor_lite.services import audit as service


@get("/v1/audit", tags=["Audit"], opt={"access": READ})
async def list_audit(
    request: Request[Any, Any, Any], principal: Principal,
    event_type: str | None = None, resource_type: str | None = None,
    from_: Annotated[str | None, Parameter(query="from")] = None, to: str | None = None,
    limit: int | None = None, cursor: str | None = None,
    output_format: Annotated[str | None, Parameter(query="format")] = None,
) -> Response[Any]:
    """Events newest first (`{data, nextCursor}`), or `?format=csv`: every matching event, oldest first."""
    filters = service.parse_filter(event_type, resource_type, from_, to)
    core = core_of(request)
    if output_format == "csv":
        chunks = await service.csv_chunks(core, principal, filters)
        return Stream(
            chunks, media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
        )
    if output_format not in (None, "json"):
        raise ValidationError("format must be json or csv", field="format")
    events, next_cursor = await service.list_events(core, principal, filters, limit=page_limit(limit), cursor=cursor)
    return json_response(Page(data=events, nextCursor=next_cursor))

"""`POST /v1/events`: start the runs an event triggers and resume the runs waiting for it."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from rotor_lite.api.auth import WRITE
from rotor_lite.api.http import core_of, json_response, read_body
from rotor_lite.models import Principal
from rotor_lite.schemas import EventSend
from rotor_lite.services import workflow_events as service


@post("/v1/events", status_code=202, tags=["Workflows"], opt={"access": WRITE, "audit": False})
async def send_event(request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
    """`{id, runIds, resumed}`; with a known `idempotencyKey`, `{duplicate: true, runIds}` of the first runs."""
    spec = await read_body(request, EventSend)
    published = await service.send_event(core_of(request), principal, spec)
    body: dict[str, Any] = {"id": published.id, "runIds": published.run_ids, "resumed": published.resumed}
    if published.duplicate:
        body["duplicate"] = True
    if published.deferred:
        body["deferred"] = True
    return json_response(body, 202)

"""`/v1/alerts`: the workspace's failure-alert destinations."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, put

from rotor_lite.api.auth import READ, WRITE
from rotor_lite.api.http import core_of, json_response, read_body
from rotor_lite.models import Principal
from rotor_lite.schemas import AlertsUpdate
from rotor_lite.services import alerts as service


@get("/v1/alerts", tags=["Alerts"], opt={"access": READ})
async def get_alerts(request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
    """`{email, slackWebhookUrl}`: where terminal job failures are reported."""
    core = core_of(request)
    return json_response(service.alerts_out(core, principal, await service.get_alerts(core, principal)))


@put("/v1/alerts", tags=["Alerts"], opt={"access": WRITE, "audit": "alert.updated"})
async def put_alerts(request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
    """Set both destinations; a missing or null one is turned off."""
    spec = await read_body(request, AlertsUpdate)
    core = core_of(request)
    return json_response(service.alerts_out(core, principal, await service.put_alerts(core, principal, spec)))

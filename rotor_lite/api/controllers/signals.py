"""`POST /v1/signals/:signal_id/complete`: resume the run waiting on a signal."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from rotor_lite.api.auth import DECIDE
from rotor_lite.api.http import core_of, json_response, read_body
from rotor_lite.models import Principal
from rotor_lite.schemas import SignalComplete
from rotor_lite.services import signals as service


@post("/v1/signals/{signal_id:str}/complete", status_code=200, tags=["Workflows"],
      opt={"access": DECIDE, "audit": "signal.completed"})
async def complete_signal(request: Request[Any, Any, Any], principal: Principal, signal_id: str) -> Response[bytes]:
    """Resume with `{data}`: 404 unknown, 409 held by another run than `runId`, 410 resolved or timed out."""
    spec = await read_body(request, SignalComplete)
    run_id = await service.complete_signal(core_of(request), principal, signal_id, spec)
    return json_response({"runId": run_id})

"""Status, usage, metrics, health and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from rotor_lite.api.auth import PUBLIC, READ, metrics_scope
from rotor_lite.api.http import core_of, json_response
from rotor_lite.api.openapi import build_document
from rotor_lite.metrics import CONTENT_TYPE_LATEST
from rotor_lite.models import Principal
from rotor_lite.schemas import StatusOut, UsageOut
from rotor_lite.services import status as service


@get("/v1/status", tags=["Status"], opt={"access": READ, "returns": StatusOut})
async def get_status(request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
    """Workspace health and quota."""
    return json_response(await service.status(core_of(request), principal))


@get("/v1/usage", tags=["Usage"], opt={"access": READ, "returns": UsageOut})
async def get_usage(request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
    """Jobs accepted this billing period, per queue."""
    return json_response(await service.usage(core_of(request), principal))


# Litestar appends "; charset=utf-8" to every text/* type itself: without this the header said it twice.
_PROMETHEUS_TEXT = CONTENT_TYPE_LATEST.split("; charset=")[0]


@get("/metrics", tags=["Metrics"], media_type=_PROMETHEUS_TEXT, opt={"access": READ})
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text format: the admin key's workspace, or every workspace with the `[metrics] token`."""
    text = await service.metrics_text(core_of(request), await metrics_scope(request))
    return Response(content=text, media_type=_PROMETHEUS_TEXT)


@get("/healthz", tags=["Status"], opt={"access": PUBLIC})
async def healthz() -> Response[bytes]:
    """Liveness: no auth."""
    return json_response({"status": "ok"})


@get("/doc", tags=["Status"], include_in_schema=False, opt={"access": PUBLIC})
async def openapi_document(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The OpenAPI document of every route."""
    document = request.app.state.get("openapi_document")
    if document is None:
        document = request.app.state.openapi_document = build_document(request.app)
    return json_response(document)

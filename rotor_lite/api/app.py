"""The Litestar application: routes, auth dependency, error envelope, lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO, Any

from litestar import Litestar
from litestar.datastructures import MutableScopeHeaders
from litestar.types import ControllerRouterHandler, Message, Scope
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from rotor_lite import __version__
from rotor_lite.api.auth import check_declared, provide_principal
from rotor_lite.services.rate_limits import RateLimiter
from rotor_lite.api.controllers.admin import AdminController
from rotor_lite.api.controllers.api_keys import ApiKeyController
from rotor_lite.api.controllers.jobs import DlqController, JobController
from rotor_lite.api.controllers.queues import QueueController
from rotor_lite.api.controllers.schedules import ScheduleController
from rotor_lite.api.controllers.status import get_status, get_usage, healthz, metrics, openapi_document
from rotor_lite.api.audit import audit_middleware
from rotor_lite.api.controllers.alerts import get_alerts, put_alerts
from rotor_lite.api.controllers.audit import list_audit
from rotor_lite.api.controllers.secrets import SecretController
from rotor_lite.api.controllers.webhooks import WebhookController
from rotor_lite.api.controllers.approvals import ApprovalController
from rotor_lite.api.controllers.guardrails import GuardrailController
from rotor_lite.api.controllers.events import send_event
from rotor_lite.api.controllers.functions import FunctionController
from rotor_lite.api.controllers.runs import RunController
from rotor_lite.api.controllers.signals import complete_signal
from rotor_lite.api.controllers.workers import WorkerController
from rotor_lite.api.controllers.workspaces import WorkspaceController
from rotor_lite.api.dashboard import dashboard_routes, template_config
from rotor_lite.api.errors import http_error_handler, internal_error_handler, rate_limit_headers, rotor_error_handler
from rotor_lite.api.mcp_endpoint import McpEndpoint
from rotor_lite.clock import Clock
from rotor_lite.config import Settings
from rotor_lite.engine.runtime import Runtime
from rotor_lite.errors import ConfigError, RotorError

log = logging.getLogger("rotor_lite")
_GC_THRESHOLDS = (20_000, 20, 100)  # young, middle, old: see the lifespan
ROUTES: list[ControllerRouterHandler] = [
    QueueController, JobController, DlqController, get_status, get_usage, metrics, healthz, openapi_document,
    ScheduleController, WebhookController, get_alerts, put_alerts, SecretController, list_audit,
    ApprovalController, GuardrailController, FunctionController, RunController, send_event, complete_signal,
    AdminController, ApiKeyController, WorkspaceController, WorkerController,
]


def create_app(
    settings: Settings, clock: Clock | None = None, on_ready: Any = None, data_lock: IO[str] | None = None
) -> Litestar:
    """The app; the runtime (storage and engine) starts in its lifespan, under `data_lock` when one is given."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        try:
            runtime = Runtime(settings, clock, data_lock)
            await runtime.__aenter__()
        except ConfigError as exc:
            log.error("cannot start: %s", exc.message)
            raise
        try:
            assert runtime.core is not None
            app.state.runtime = runtime
            app.state.core = runtime.core
            app.state.rate_limiter = RateLimiter(runtime.core.db)
            if on_ready is not None:
                on_ready(runtime)
            # Everything built at start-up lives as long as the process: keep it out of the
            # collector's full passes, which otherwise walk it every few hundred requests.
            gc.freeze()
            # The default young-generation threshold (700 allocations) runs a collection every few
            # deliveries, and each one walks every object of the 64+ requests in flight. Refcounting
            # frees almost all of them anyway; a larger threshold gave +12–15 % deliveries/s.
            gc.set_threshold(*_GC_THRESHOLDS)
            yield
        finally:
            await runtime.__aexit__(None, None, None)

    mcp = McpEndpoint()
    app = Litestar(
        route_handlers=[*ROUTES, mcp.route, *dashboard_routes()],
        template_config=template_config(),
        middleware=[audit_middleware],
        dependencies={"principal": Provide(provide_principal)},
        exception_handlers={RotorError: rotor_error_handler, HTTPException: http_error_handler, Exception: internal_error_handler},
        before_send=[_add_rate_limit_headers],
        lifespan=[lifespan, mcp.lifespan],
        logging_config=None,  # `rotor-lite serve` configures logging (rotor_lite.logs)
        request_max_body_size=settings.limits.max_request_bytes,
        openapi_config=OpenAPIConfig(
            title="rotor-lite", version=__version__, path="/schema",
            components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
            security=[{"bearer": []}],
        ),
        debug=False,
    )
    check_declared(app)
    return app


async def _add_rate_limit_headers(message: Message, scope: Scope) -> None:
    limit = scope.get("state", {}).get("rate_limit")
    if limit is not None and message["type"] == "http.response.start":
        headers = MutableScopeHeaders.from_message(message)
        for name, value in rate_limit_headers(*limit).items():
            headers[name] = value

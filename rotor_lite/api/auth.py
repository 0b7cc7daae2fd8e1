"""Who may call each route, checked in one place: authentication, the route's declared access, the rate limit.

Every route declares its access once, next to the route, in its handler's `opt` (`opt={"access": WRITE}`):
the least role it needs (viewer < approver < developer < admin), whether an `rt_q_` key may call it
for its own queue, whether only a team key may, and whether a team key may call it without naming a
workspace in `X-Rotor-Workspace`. `provide_principal` enforces it for every authenticated route; the
OpenAPI document shows it (`x-rotor-role`, `x-rotor-keys`).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.routes import ASGIRoute, HTTPRoute

from rotor_lite.api.http import header
from rotor_lite.errors import Forbidden, KeyRefused, ValidationError
from rotor_lite.services.rate_limits import RateLimiter
from rotor_lite.models import KeyType, Principal, Role
from rotor_lite.services.core import Core

ACCESS = "access"  # the handler `opt` key holding its Access
WORKSPACE_HEADER = "X-Rotor-Workspace"


class Access(msgspec.Struct, frozen=True, kw_only=True):
    """Who may call a route: `role` is the least role (None: anyone, no key needed, unless `operator`)."""

    role: Role | None
    queue_key: bool = False  # an rt_q_ key may call it, for its own queue
    team_only: bool = False  # only an rt_team_ key may call it
    any_workspace: bool = False  # a team key may call it without naming a workspace
    operator: bool = False  # only the operator token ([mcp] admin_token), never an API key

    @property
    def key_types(self) -> tuple[KeyType, ...]:
        """The kinds of key that may call the route (with the role it needs)."""
        if self.role is None:
            return ()
        if self.team_only:
            return (KeyType.TEAM,)
        return (KeyType.WORKSPACE, KeyType.TEAM, KeyType.QUEUE) if self.queue_key else (KeyType.WORKSPACE, KeyType.TEAM)


PUBLIC = Access(role=None)
READ = Access(role=Role.VIEWER)
DECIDE = Access(role=Role.APPROVER)
WRITE = Access(role=Role.DEVELOPER)
ADMIN = Access(role=Role.ADMIN)
QUEUE_READ = Access(role=Role.VIEWER, queue_key=True)
QUEUE_WRITE = Access(role=Role.DEVELOPER, queue_key=True)
OPERATOR = Access(role=None, operator=True)


def access_of(handler: BaseRouteHandler) -> Access:
    """A route's declared access; a route without one is a programming error."""
    access = handler.opt.get(ACCESS)
    if not isinstance(access, Access):
        raise TypeError(f"route {handler.handler_name} declares no access: add opt={{'access': …}}")
    return access


def app_routes(app: Litestar) -> Iterator[tuple[HTTPRoute, HTTPRouteHandler]]:
    """Each (route, handler) of the app's own routes: not the OPTIONS handlers nor the `/schema` pages
    Litestar adds itself."""
    schema_path = app.openapi_config.path if app.openapi_config is not None else None
    for route in app.routes:
        if isinstance(route, HTTPRoute) and not (schema_path and route.path.startswith(schema_path)):
            yield from ((route, handler) for handler in route.route_handlers if "OPTIONS" not in handler.http_methods)


def check_declared(app: Litestar) -> None:
    """Every route of the app declares its access (checked when the app is built), `/mcp` included."""
    for _, handler in app_routes(app):
        access_of(handler)
    for route in app.routes:
        if isinstance(route, ASGIRoute):
            access_of(route.route_handler)


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """The caller, authenticated, allowed by the route's declared access, and counted against its
    workspace's rate limit."""
    core: Core = request.app.state.core
    workspace = header(request, b"x-rotor-workspace") or None
    try:
        principal = await core.keys.authenticate(header(request, b"authorization"), core.clock.now_ms(), workspace)
    except KeyRefused as refused:
        request.state.key_refused = refused  # the audit middleware records the refusal
        raise
    request.state.principal = principal  # the audit middleware records who made the call
    authorize(principal, request.route_handler.opt[ACCESS], workspace_named=workspace is not None)
    limits = await core.plans.limits(core.db, principal.workspace_id)
    if limits.requests_per_minute:
        limiter: RateLimiter = request.app.state.rate_limiter
        remaining, reset_at = await limiter.hit(principal.workspace_id, limits.requests_per_minute, time.time())
        request.state.rate_limit = (limits.requests_per_minute, remaining, reset_at)  # read by before_send
    return principal


def authorize(principal: Principal, access: Access, *, workspace_named: bool) -> None:
    """Raise Forbidden when the key's kind or role may not call a route declared `access`."""
    if access.operator:
        raise Forbidden("the admin routes take the operator token ([mcp] admin_token), not an API key",
                        {"role": principal.role.value})
    if principal.queue_name is not None and not access.queue_key:
        raise Forbidden("a queue-scoped key may only enqueue, lease and process jobs and read its queue's jobs and stats",
                        {"keyType": KeyType.QUEUE.value})
    if access.team_only and principal.key_type is not KeyType.TEAM:
        raise Forbidden("only a team key (rt_team_) may do this", {"keyType": principal.key_type.value})
    if access.role is not None and not principal.role.covers(access.role):
        raise Forbidden(f"a {principal.role.value} key may not do this (it needs {access.role.value})",
                        {"role": principal.role.value, "required": access.role.value})
    if principal.key_type is KeyType.TEAM and not workspace_named and not access.any_workspace:
        raise ValidationError(f"a team key names the workspace it acts in with the {WORKSPACE_HEADER} header (id or name)",
                              field=WORKSPACE_HEADER)


async def metrics_scope(request: Request[Any, Any, Any]) -> str | None:
    """Whose series a `/metrics` scrape sees: every workspace's (None) with the configured scrape token,
    else those of the key's own workspace."""
    core: Core = request.app.state.core
    token = core.settings.metrics.token
    authorization = header(request, b"authorization")
    if token and authorization and hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
        return None
    return (await provide_principal(request)).workspace_id

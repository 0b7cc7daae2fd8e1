"""Authentication, authorization by role, and the per-workspace rate limit."""

from __future__ import annotations

import hmac
import time
from typing import Any

from litestar import Request

from rotor_lite.api.http import header
from rotor_lite.errors import Forbidden, KeyRefused, RateLimited
from rotor_lite.models import Principal, Role
from rotor_lite.services.core import Core
from rotor_lite.services.workspaces import Authenticator

_WRITERS = frozenset({Role.ADMIN, Role.DEVELOPER})
_DECIDERS = frozenset({Role.ADMIN, Role.DEVELOPER, Role.APPROVER})
QUEUE_KEY_ROUTE = "queue_key"  # in a handler's opt: a queue-scoped (rt_q_) key may call it, for its own queue


class RateLimiter:
    """Requests per workspace per fixed one-minute window; 0 means unlimited."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._windows: dict[str, tuple[int, int]] = {}

    def hit(self, workspace_id: str, now_s: float) -> tuple[int, int]:
        """Count one request; returns (remaining, reset epoch seconds) or raises RateLimited."""
        window = int(now_s // 60)
        reset_at = (window + 1) * 60
        start, count = self._windows.get(workspace_id, (window, 0))
        if start != window:
            count = 0
        if count >= self.per_minute:
            raise RateLimited(max(1, int(reset_at - now_s)), self.per_minute, reset_at)
        self._windows[workspace_id] = (window, count + 1)
        return self.per_minute - count - 1, reset_at


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """The caller, authenticated and counted against the workspace's rate limit."""
    state = request.app.state
    core: Core = state.core
    authenticator: Authenticator = state.authenticator
    try:
        principal = await authenticator.authenticate(header(request, b"authorization"), core.clock.now_ms())
    except KeyRefused as refused:
        request.state.key_refused = refused  # the audit middleware records the refusal
        raise
    request.state.principal = principal  # the audit middleware records who made the call
    if principal.queue_name is not None and not request.route_handler.opt.get(QUEUE_KEY_ROUTE):
        raise Forbidden("a queue-scoped key may only enqueue jobs and read its queue's jobs and stats")
    limiter: RateLimiter = state.rate_limiter
    if limiter.per_minute:
        remaining, reset_at = limiter.hit(principal.workspace_id, time.time())
        request.state.rate_limit = (limiter.per_minute, remaining, reset_at)  # read by before_send
    return principal


def require_write(principal: Principal) -> None:
    """Only admin and developer keys may change queues and jobs."""
    if principal.role not in _WRITERS:
        raise Forbidden(f"a {principal.role.value} key may not do this", {"role": principal.role.value})


def require_decider(principal: Principal) -> None:
    """Admin, developer and approver keys may decide approvals and complete signals."""
    if principal.role not in _DECIDERS:
        raise Forbidden(f"a {principal.role.value} key may not do this", {"role": principal.role.value})


def require_admin(principal: Principal) -> None:
    if principal.role != Role.ADMIN:
        raise Forbidden(f"a {principal.role.value} key may not do this (admin only)", {"role": principal.role.value})


async def metrics_scope(request: Request[Any, Any, Any]) -> str | None:
    """Whose series a `/metrics` scrape sees: every workspace's (None) with the configured scrape token,
    else those of the admin key's own workspace."""
    core: Core = request.app.state.core
    token = core.settings.metrics.token
    authorization = header(request, b"authorization")
    if token and authorization and hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
        return None
    principal = await provide_principal(request)
    if principal.role is not Role.ADMIN or principal.queue_name is not None:
        raise Forbidden("metrics need an admin key or the scrape token", {"role": principal.role.value})
    return principal.workspace_id

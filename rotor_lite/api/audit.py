"""The audit trail of the API: every successful mutating call, and every refused key or role, becomes an
`audit_event` row.

A route middleware sees the matched route (its path template and parameters) and the
response. The event type comes from the handler's `opt["audit"]` when it names one, else from
the route (`POST /v1/queues/{name}/pause` → `queue.paused`). `opt["audit"] = False` marks a
handler whose service writes its own events in its transaction (the secrets vault). The
row is committed before the response leaves, with the caller's key id and address;
request bodies are never recorded. Enqueue and pull workers' calls (the data plane) are audited only
when refused.

A 401 becomes `auth.failed` (reason missing, invalid, revoked or expired) in the workspace the key
traces to: a revoked or expired key's own, or that of the keys sharing an unknown key's public prefix.
A key that traces to no workspace is only logged, since every audit row belongs to a workspace.
A 403 becomes `auth.forbidden` in the caller's workspace, with its role and the route.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, cast

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from rotor_lite.errors import KeyRefused
from rotor_lite.models import Principal
from rotor_lite.services import audit
from rotor_lite.services.core import Core
from rotor_lite.store.audit import AuditRow

log = logging.getLogger("rotor_lite.audit")
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_REFUSALS = frozenset({401, 403})
_VERBS = {"POST": "created", "PUT": "updated", "PATCH": "updated", "DELETE": "deleted"}
_ACTIONS = {
    "retry": "retried", "pause": "paused", "resume": "resumed", "drain": "drained", "approve": "approved",
    "reject": "rejected", "rotate": "rotated", "rotate-secret": "secret_rotated", "test": "tested",
    "fire-now": "fired", "redeliver": "redelivered", "retry-all": "retried_all", "replay": "retried",
    "revoke": "revoked", "enable": "enabled", "disable": "disabled", "cancel": "cancelled", "complete": "completed",
}
_DELETE_VERBS = {"job": "cancelled", "api_key": "revoked"}
_NOT_AUDITED = {
    ("POST", "/v1/queues/{name}/jobs"), ("POST", "/v1/queues/{name}/jobs/batch"), ("POST", "/v1/schedules/preview"),
    # A pull worker's calls are the data plane too: a callback job's delivery writes no audit row either.
    ("POST", "/v1/queues/{name}/jobs/lease"), ("POST", "/v1/queues/{name}/jobs/outcomes"),
    ("POST", "/v1/queues/{name}/jobs/{job_id}/heartbeat"), ("POST", "/v1/queues/{name}/jobs/{job_id}/complete"),
    ("POST", "/v1/queues/{name}/jobs/{job_id}/fail"),
}
_NAMED = {
    ("POST", "/v1/dlq/replay"): ("job.retried", "queue"),
    ("POST", "/v1/guardrails/dnc"): ("guardrail.dnc_added", "guardrail"),
    ("DELETE", "/v1/guardrails/dnc/emails/{email}"): ("guardrail.dnc_removed", "guardrail"),
    ("DELETE", "/v1/guardrails/dnc/domains/{domain}"): ("guardrail.dnc_removed", "guardrail"),
}


def _singular(segment: str) -> str:
    name = segment.replace("-", "_")
    if name.endswith("ies"):
        return name[:-3] + "y"
    return name[:-1] if name.endswith("s") else name


def describe(method: str, template: str, params: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """(event type, resource type, resource id) of a mutating call, or None when it is not audited."""
    template = plain_template(template)
    if method not in _MUTATING or (method, template) in _NOT_AUDITED or not template.startswith("/v1/"):
        return None
    named = _NAMED.get((method, template))
    segments = template.strip("/").split("/")[1:]
    ids = [str(params.get(s[1:-1])) for s in segments if s.startswith("{")]
    if named is not None:
        return named[0], named[1], ids[-1] if ids else None
    literals = [s for s in segments if not s.startswith("{")]
    if not literals:
        return None
    action = _ACTIONS.get(literals[-1]) if len(literals) > 1 and segments[-1] == literals[-1] else None
    if action is not None:
        resource = _singular(literals[-2])
        return f"{resource}.{action}", resource, ids[-1] if ids else None
    resource = _singular(literals[-1])
    verb = _DELETE_VERBS.get(resource, "deleted") if method == "DELETE" else _VERBS[method]
    return f"{resource}.{verb}", resource, ids[-1] if segments[-1].startswith("{") else None


@lru_cache(maxsize=512)  # one entry per route: this runs for every mutating request
def plain_template(template: str) -> str:
    """`/v1/queues/{name:str}` → `/v1/queues/{name}`."""
    return "/".join(s.split(":")[0] + "}" if s.startswith("{") and ":" in s else s for s in template.split("/"))


def audit_middleware(app: ASGIApp) -> ASGIApp:
    """Record successful mutating calls and refused keys and roles; set the client address for services
    that audit themselves."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        token = audit.client_ip.set(_client_address(scope))
        try:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
            else:
                await app(scope, receive, _Recorder(scope, send, _described(scope)).send)
        finally:
            audit.client_ip.reset(token)

    return middleware


def _client_address(scope: Scope) -> str | None:
    client = scope.get("client")
    return _ip_address(client[0]) if client else None


@lru_cache(maxsize=1024)
def _ip_address(host: str) -> str | None:
    """`host` when it is an IP address: a trusted proxy's X-Forwarded-For could carry any text."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _described(asgi_scope: Scope) -> tuple[str, str, str | None] | None:
    scope = cast(dict[str, Any], asgi_scope)
    if scope.get("method") not in _MUTATING:
        return None
    opt = getattr(scope.get("route_handler"), "opt", None) or {}
    return describe_route(scope["method"], scope.get("path_template", ""), scope.get("path_params") or {}, opt)


def describe_route(
    method: str, template: str, params: dict[str, Any], opt: Mapping[str, Any]
) -> tuple[str, str, str | None] | None:
    """What a successful call of a route is recorded as (its handler's `opt["audit"]` names or silences it);
    the dashboard records its actions through this too, as the API routes they mirror."""
    if opt.get("audit") is False:
        return None
    described = describe(method, template, params)
    if described is not None and isinstance(opt.get("audit"), str):
        return opt["audit"], described[1], described[2]
    return described


def route_event(
    principal: Principal, described: tuple[str, str, str | None], *, now: int, found_id: str | None,
    metadata: Mapping[str, Any],
) -> AuditRow:
    """The audit row of a successful call described by `describe_route`."""
    event_type, resource_type, resource_id = described
    return audit.audit_event(
        principal.workspace_id, event_type, actor=principal.key_id, now=now, resource_type=resource_type,
        resource_id=resource_id or found_id, metadata=metadata,
    )


class _Recorder:
    """Holds an audited response until its audit rows are committed: a described call's 2xx/3xx, and
    every 401 and 403."""

    def __init__(self, scope: Scope, send: Send, described: tuple[str, str, str | None] | None) -> None:
        self._scope = cast(dict[str, Any], scope)
        self._send, self._described = send, described
        self._start: dict[str, Any] | None = None
        self._body: list[bytes] = []

    async def send(self, asgi_message: Message) -> None:
        message = cast(dict[str, Any], asgi_message)
        if message["type"] == "http.response.start" and self._audited(message["status"]):
            self._start = message
            return
        if self._start is None:
            await self._send(asgi_message)
            return
        self._body.append(message.get("body", b""))
        if message.get("more_body"):
            return
        await self._record(self._start["status"], b"".join(self._body))
        await self._send(cast(Message, self._start))
        await self._send({"type": "http.response.body", "body": b"".join(self._body), "more_body": False})

    def _audited(self, status: int) -> bool:
        return status in _REFUSALS or (status < 400 and self._described is not None)

    async def _record(self, status: int, body: bytes) -> None:
        core: Core | None = getattr(self._scope["app"].state, "core", None)
        if core is None:
            return
        events = self._refusal_events(core, status) if status in _REFUSALS else self._success_events(core, body)
        if not events:
            return
        try:
            await audit.record_now(core, *events)
        except Exception:  # the change itself is committed: report, do not turn it into an error
            log.exception("audit write failed", extra={"event_type": events[0].event_type})

    def _success_events(self, core: Core, body: bytes) -> list[AuditRow]:
        principal = (self._scope.get("state") or {}).get("principal")
        if principal is None or self._described is None:
            return []
        _, resource_type, resource_id = self._described
        found = _response_fields(body)
        events = [route_event(
            principal, self._described, now=core.clock.now_ms(), found_id=found.get("id") or found.get("name"),
            metadata={"method": self._scope["method"], "path": self._scope["path"],
                      "status": self._start["status"] if self._start else None},
        )]
        if found.get("callback_secret") and self._scope["method"] == "PATCH" and resource_type == "queue":
            events.append(audit.audit_event(
                principal.workspace_id, "callback_secret.rotated", actor=principal.key_id, now=core.clock.now_ms(),
                resource_type="queue", resource_id=resource_id,
            ))
        return events

    def _refusal_events(self, core: Core, status: int) -> list[AuditRow]:
        """`auth.forbidden` in the caller's workspace; `auth.failed` in each workspace the refused key
        traces to, or only a log line when it traces to none (an audit row needs a workspace)."""
        state = self._scope.get("state") or {}
        request = {"method": self._scope["method"], "route": plain_template(self._scope.get("path_template", "")),
                   "path": self._scope["path"], "status": status}
        now = core.clock.now_ms()
        principal = state.get("principal")
        if status == 403:
            return [audit.forbidden_event(principal, now=now, request=request)] if principal is not None else []
        refused: KeyRefused | None = state.get("key_refused")
        events = audit.refused_events(refused, now=now, request=request) if refused is not None else []
        if not events:
            reason = refused.reason if refused is not None else "unknown"
            log.warning("API key refused (%s) for %s %s from %s", reason, request["method"], request["path"],
                        audit.client_ip.get(), extra={"reason": reason, **request})
        return events


def _response_fields(body: bytes) -> dict[str, Any]:
    """`id`, `name` and whether a callback secret was minted, from a JSON response (never kept)."""
    if not body.startswith(b"{"):
        return {}
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return {}
    if not isinstance(decoded, dict):
        return {}
    return {
        "id": decoded.get("id") if isinstance(decoded.get("id"), str) else None,
        "name": decoded.get("name") if isinstance(decoded.get("name"), str) else None,
        "callback_secret": bool(decoded.get("callback_secret")),
    }

"""The dashboard: server-rendered pages under `/dashboard`, in the same process as the API.

Pages are Jinja templates through Litestar's template support; they call the same service functions
as the API, and each page and button takes its access from the API route it mirrors (`access.py`).
The little JavaScript there is (`static/dashboard.js`: live counts, the graph's refresh, the cron
preview, keyboard shortcuts, local times) is served from here: nothing comes from another site.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, Router
from litestar.datastructures import MutableScopeHeaders
from litestar.di import Provide
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, ControllerRouterHandler, Message, Receive, Scope, Send

from rotor_lite.api.auth import ACCESS, PUBLIC
from rotor_lite.api.dashboard import audit_log, decisions, queues, schedules, settings, signin, workflows
from rotor_lite.api.dashboard.access import (
    ChooseWorkspace, SignInRequired, resealed_session_cookie, secure, session_principal,
)
from rotor_lite.api.dashboard.render import HERE, NAV, NavItem, page, template_config
from rotor_lite.api.dashboard.session import SESSION_COOKIE, cleared_session_cookie
from rotor_lite.errors import RotorError

__all__ = ["dashboard_routes", "template_config"]

log = logging.getLogger("rotor_lite.dashboard")
# What the browser may load and run on a dashboard page: this server's files only, no inline script.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self';"
                               " frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

NAV.extend([
    NavItem("Overview", queues.overview), NavItem("DLQ", queues.dlq_page), NavItem("Approvals", decisions.approvals_page),
    NavItem("Runs", workflows.runs_page), NavItem("Schedules", schedules.schedules_page),
    NavItem("Webhooks", settings.webhooks_page), NavItem("Secrets", settings.secrets_page),
    NavItem("Guardrails", settings.guardrails_page), NavItem("API keys", settings.keys_page),
    NavItem("Notifications", settings.notifications_page), NavItem("Audit", audit_log.audit_page),
])
PAGES: list[ControllerRouterHandler] = [
    signin.sign_in_form, signin.sign_in, signin.sign_out, signin.workspaces_page, signin.choose_workspace,
    queues.overview, queues.live_counts, queues.queue_page, queues.pause_queue, queues.resume_queue,
    queues.drain_queue, queues.retry_all, queues.job_page, queues.retry_job, queues.cancel_job, queues.dlq_page,
    queues.replay_dlq, decisions.approvals_page, decisions.approve, decisions.reject, decisions.decide_signal,
    workflows.runs_page, workflows.run_page, workflows.run_graph_part, workflows.cancel_run, workflows.replay_run,
    schedules.schedules_page, schedules.preview, schedules.create_schedule, schedules.schedule_page,
    schedules.pause_schedule, schedules.resume_schedule, schedules.fire_now, schedules.update_schedule,
    settings.webhooks_page, settings.webhook_page, settings.send_test, settings.redeliver, settings.secrets_page,
    settings.create_secret, settings.rotate_secret, settings.delete_secret, settings.guardrails_page,
    settings.add_dnc, settings.remove_email, settings.remove_domain, settings.keys_page, settings.create_key,
    settings.rotate_key, settings.revoke_key, settings.notifications_page, settings.save_alerts,
    audit_log.audit_page, audit_log.audit_csv,
]


def dashboard_routes() -> list[ControllerRouterHandler]:
    """The dashboard's pages and its static files (HTML 401/403/404 pages instead of the API's JSON errors)."""
    pages = Router(
        path="/dashboard", route_handlers=PAGES, include_in_schema=False, middleware=[_page_headers],
        dependencies={"principal": Provide(session_principal)},
        exception_handlers={
            SignInRequired: _to_sign_in, ChooseWorkspace: _to_workspaces, RotorError: _error_page,
            Exception: _crash_page,
        },
    )
    files = create_static_files_router(
        path="/dashboard/static", directories=[HERE / "static"], opt={ACCESS: PUBLIC}, include_in_schema=False,
        name="dashboard-static", cache_control=None,
    )
    return [pages, files]


def _page_headers(app: ASGIApp) -> ASGIApp:
    """Security headers on every page, `Server-Timing: app;dur=<ms>` (what bench/dashboard.py reads), and the
    session cookie again when the page changed its session (unless the page set that cookie itself)."""

    async def with_headers(scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in _HEADERS.items():
                    headers[name] = value
                headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
                resealed = resealed_session_cookie(Request(scope))
                if resealed is not None and not _sets_session_cookie(headers):
                    headers.add("set-cookie", resealed.to_header(header=""))
            await send(message)

        await app(scope, receive, send_with_headers)

    return with_headers


def _sets_session_cookie(headers: MutableScopeHeaders) -> bool:
    return any(value.startswith(f"{SESSION_COOKIE}=") for value in headers.getall("set-cookie", []))


def _to_sign_in(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """No session: to the sign-in form (coming back here after). A key refused now: the form, as a 401."""
    assert isinstance(exc, SignInRequired)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if exc.reason is not None:
        return signin.sign_in_page(request, message=f"{exc.reason}: sign in again.", status=401, next_page=here,
                                   cookies=[cleared_session_cookie(secure=secure(request))])
    if request.method == "GET" and _cross_site_without_cookie(request):
        return Template(template_name="hop.html", context={"here": here})
    target = signin.SIGN_IN + (f"?{urlencode({'next': here})}" if request.method == "GET" else "")
    return Redirect(target, status_code=303)


def _cross_site_without_cookie(request: Request[Any, Any, Any]) -> bool:
    """A link from another site (an alert in Slack or a mail) is opened without the SameSite=Strict cookie;
    one hop from this page to itself is same-site, and brings the cookie if there is one."""
    return request.headers.get("sec-fetch-site") == "cross-site" and SESSION_COOKIE not in request.cookies


def _to_workspaces(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(f"{signin.CHOOSE}?{urlencode({'next': here})}", status_code=303)


def _error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, RotorError)
    return _problem(request, exc.status, exc.message)


def _crash_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("dashboard page failed", extra={"path": request.url.path}, exc_info=exc)
    return _problem(request, 500, "Something went wrong on the server; the log has the details.")


def _problem(request: Request[Any, Any, Any], status: int, message: str) -> Response[Any]:
    principal = request.state.get("principal")
    if principal is None or request.state.get("session") is None:
        return Template(template_name="error.html", status_code=status, context={"status": status, "message": message})
    response = page(request, principal, "error.html", status=status, message=message)
    response.status_code = status
    return response


"""Who may see and do what in the dashboard, decided by the API's own declarations.

Every dashboard page and action names the API route whose work it does (`opt=mirror(handler)`): it
takes that route's declared access, so a page a key may not open is a 403 and a button it may not press
is not drawn (`allowed`), from the same declarations `provide_principal` enforces. Each request is
authenticated again with the session's key through the API's authenticator; each POST must carry the
session's CSRF token; each action is audited as the API route it mirrors would be.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from types import SimpleNamespace
from typing import Any, TypeVar
from urllib.parse import quote

import msgspec
from litestar import Litestar, Request
from litestar.datastructures import Cookie
from litestar.handlers import HTTPRouteHandler
from litestar.response import Redirect

from rotor_lite.api.audit import describe_route, plain_template, route_event
from rotor_lite.api.auth import ACCESS, access_of, app_routes, authorize
from rotor_lite.api.dashboard.session import SESSION_COOKIE, Session, Sessions, is_tls, session_cookie
from rotor_lite.api.http import core_of
from rotor_lite.errors import Forbidden, KeyRefused, RotorError, ValidationError, WorkspaceNotFound
from rotor_lite.models import KeyType, Principal
from rotor_lite.services import audit, dashboard_sessions

T = TypeVar("T")
MIRRORS = "mirrors"  # the handler `opt` key naming the API route a dashboard route does the work of
_SESSIONS = "dashboard_sessions"
_SESSION_AS_LOADED = "session_as_loaded"  # the request's session as its cookie sealed it: was it changed since?
_API_ROUTES = "dashboard_api_routes"


class SignInRequired(Exception):
    """No live session: a page redirects to the sign-in form; a refused key (`reason`) gets it as a 401."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "sign in")
        self.reason = reason


class ChooseWorkspace(Exception):
    """A team key's session has not chosen the workspace it acts in yet."""


def mirror(handler: HTTPRouteHandler) -> dict[str, Any]:
    """The `opt` of a dashboard route doing the work of the API route `handler`: its access, and its function
    (Litestar copies each handler's `opt` deeply: a function copies as itself, a handler would not)."""
    return {ACCESS: access_of(handler), MIRRORS: handler.fn}


def sessions_of(request: Request[Any, Any, Any]) -> Sessions:
    sessions: Sessions | None = request.app.state.get(_SESSIONS)
    if sessions is None:
        lifetime = core_of(request).settings.dashboard.ms("session_lifetime")
        sessions = request.app.state[_SESSIONS] = Sessions(lifetime, core_of(request).vault)
    return sessions


def secure(request: Request[Any, Any, Any]) -> bool:
    """Whether the dashboard's cookies must be Secure (the browser comes over TLS)."""
    return is_tls(request, core_of(request).settings.alerts.dashboard_url)


def resealed_session_cookie(request: Request[Any, Any, Any]) -> Cookie | None:
    """The session cookie again when the page changed its session (a notice to show next, the workspace
    chosen): the cookie is the only place a session lives."""
    session: Session | None = request.state.get("session")
    if session is None or msgspec.json.encode(session) == request.state.get(_SESSION_AS_LOADED):
        return None
    return session_cookie(sessions_of(request), session, core_of(request).clock.now_ms(), secure=secure(request))


def session_of(request: Request[Any, Any, Any]) -> Session:
    """The session `session_principal` found for this request."""
    session: Session = request.state.session
    return session


async def live_session(request: Request[Any, Any, Any]) -> Session | None:
    """The session the request's cookie seals, unless it has expired or was signed out (on any node)."""
    core = core_of(request)
    session = sessions_of(request).get(request.cookies.get(SESSION_COOKIE), core.clock.now_ms())
    if session is None or await dashboard_sessions.is_signed_out(core, session.id, session.expires_at):
        return None
    return session


async def session_principal(request: Request[Any, Any, Any]) -> Principal:
    """The signed-in key's principal, authenticated now, allowed by the route's declared access; a POST
    must carry the session's CSRF token."""
    core = core_of(request)
    now = core.clock.now_ms()
    session = await live_session(request)
    if session is None:
        raise SignInRequired()
    request.state.session = session
    request.state[_SESSION_AS_LOADED] = msgspec.json.encode(session)
    if request.method == "POST":
        await check_csrf(request, session.csrf)
    try:
        principal = await core.keys.authenticate(f"Bearer {session.api_key}", now, session.workspace)
    except KeyRefused as refused:
        del request.state.session  # the 401 page clears its cookie
        request.state.key_refused = refused  # the audit middleware records the refusal (a 401)
        raise SignInRequired(refused.message) from refused
    except WorkspaceNotFound as gone:  # the team key no longer reaches the chosen workspace
        session.workspace = None
        raise ChooseWorkspace() from gone
    request.state.principal = principal  # the audit middleware records a 403 with it
    access = request.route_handler.opt[ACCESS]
    if principal.key_type is KeyType.TEAM and session.workspace is None and not access.any_workspace:
        raise ChooseWorkspace()
    authorize(principal, access, workspace_named=True)
    return principal


async def check_csrf(request: Request[Any, Any, Any], expected: str) -> None:
    """A POST's `csrf` form field (or X-CSRF-Token header) must be the token its page was drawn with."""
    sent = (await request.form()).get("csrf") or request.headers.get("x-csrf-token") or ""
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden("this form is out of date or did not come from the dashboard: reload the page and try again")


def allowed(principal: Principal, handler: HTTPRouteHandler) -> bool:
    """May the key use the dashboard route `handler` (its page or its button)?"""
    try:
        authorize(principal, access_of(handler), workspace_named=True)
    except (Forbidden, ValidationError):
        return False
    return True


def allowed_all(principal: Principal, **handlers: HTTPRouteHandler) -> SimpleNamespace:
    """`allowed` for each named dashboard route: what a page's template draws buttons from (`can.pause`).
    Attributes, not a dict: in a template `can.update` would be the dict's method, which is always true."""
    return SimpleNamespace(**{name: allowed(principal, handler) for name, handler in handlers.items()})


async def act(
    request: Request[Any, Any, Any], principal: Principal, back: str, work: Awaitable[T],
    done: Callable[[T], str], *, found_id: str | None = None, params: Mapping[str, Any] | None = None,
    record: bool = True, then: Callable[[T], str] | None = None,
) -> Redirect:
    """Carry out an action, audit it as its API route (unless `work` records its own), and go `back` (or
    where `then` says, after a success) with a notice of how it went."""
    session = session_of(request)
    try:
        result = await work
    except RotorError as exc:
        session.flash("error", exc.message)
        return Redirect(back, status_code=303)
    if record:
        await record_action(request, principal, found_id=found_id, params=params)
    session.flash("ok", done(result))
    return Redirect(then(result) if then else back, status_code=303)


async def record_action(
    request: Request[Any, Any, Any], principal: Principal, *, found_id: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> None:
    """The audit event the mirrored API route records for a successful call (none for the routes whose
    services audit themselves); `params` are its path parameters (default: this route's, same names)."""
    method, template, handler = api_route(request.app, request.route_handler.opt[MIRRORS])
    values = dict(request.path_params if params is None else params)
    described = describe_route(method, template, values, handler.opt)
    if described is None:
        return
    core = core_of(request)
    metadata = {"method": method, "path": _concrete(template, values), "via": "dashboard"}
    await audit.record_now(core, route_event(principal, described, now=core.clock.now_ms(), found_id=found_id,
                                             metadata=metadata))


def api_route(app: Litestar, fn: Callable[..., Any]) -> tuple[str, str, HTTPRouteHandler]:
    """(method, path template, registered handler) of the API route whose handler function is `fn`."""
    found: dict[Any, tuple[str, str, HTTPRouteHandler]] | None = app.state.get(_API_ROUTES)
    if found is None:
        found = app.state[_API_ROUTES] = {
            getattr(registered.fn, "__func__", registered.fn): (sorted(registered.http_methods)[0], route.path, registered)
            for route, registered in app_routes(app) if route.path.startswith("/v1/")
        }
    return found[fn]


def _concrete(template: str, params: Mapping[str, Any]) -> str:
    parts = []
    for segment in plain_template(template).split("/"):
        parts.append(quote(str(params.get(segment[1:-1], "")), safe="") if segment.startswith("{") else segment)
    return "/".join(parts)

"""Signing in (an API key for a session cookie), signing out, and a team key's choice of workspace."""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.datastructures import Cookie
from litestar.response import Redirect, Template

from rotor_lite.api.auth import ACCESS, PUBLIC
from rotor_lite.api.controllers.workspaces import WorkspaceController
from rotor_lite.api.dashboard.access import check_csrf, live_session, mirror, secure, session_of, sessions_of
from rotor_lite.api.dashboard.render import page
from rotor_lite.api.dashboard.session import (
    SIGN_IN_COOKIE, cleared_session_cookie, session_cookie, sign_in_cookie,
)
from rotor_lite.api.http import core_of
from rotor_lite.errors import KeyRefused, RotorError
from rotor_lite.models import KeyType, Principal
from rotor_lite.services import dashboard_sessions, workspaces

HOME = "/dashboard"
SIGN_IN = "/dashboard/login"
CHOOSE = "/dashboard/workspaces"
QUEUE_KEY_REFUSED = "A queue key (rt_q_) reaches one queue's jobs only: sign in with a workspace or team key."


def safe_next(target: Any) -> str:
    """Where to go after signing in: a dashboard page of this server, never another site."""
    text = str(target or "")
    if text.startswith(HOME) and not text.startswith(("//", "/\\")) and "\\" not in text and "\n" not in text:
        return text
    return HOME


def sign_in_page(request: Request[Any, Any, Any], *, message: str | None = None, status: int = 200,
                 next_page: str = HOME, cookies: list[Cookie] | None = None) -> Template:
    """The sign-in form with a fresh CSRF token (the same in its cookie and its hidden field)."""
    token = secrets.token_urlsafe(32)
    return Template(
        template_name="login.html", status_code=status,
        context={"sign_in_csrf": token, "message": message, "next_page": next_page},
        cookies=[sign_in_cookie(token, secure=secure(request)), *(cookies or [])],
    )


@get("/login", opt={ACCESS: PUBLIC})
async def sign_in_form(request: Request[Any, Any, Any], next: str | None = None) -> Template | Redirect:  # noqa: A002
    """The sign-in form; a browser with a live session goes straight on."""
    if await live_session(request) is not None:
        return Redirect(safe_next(next), status_code=303)
    return sign_in_page(request, next_page=safe_next(next))


@post("/login", opt={ACCESS: PUBLIC})
async def sign_in(request: Request[Any, Any, Any]) -> Template | Redirect:
    """Exchange the API key for a session cookie (HttpOnly, SameSite=Strict, Secure over TLS)."""
    form = await request.form()
    next_page, key = safe_next(form.get("next")), str(form.get("api_key") or "").strip()
    expected, sent = request.cookies.get(SIGN_IN_COOKIE) or "", str(form.get("csrf") or "")
    if not expected or not hmac.compare_digest(expected.encode(), sent.encode()):
        return sign_in_page(request, message="The form had expired: sign in again.", status=403, next_page=next_page)
    if not key:
        return sign_in_page(request, message="Enter an API key.", status=422, next_page=next_page)
    core = core_of(request)
    now = core.clock.now_ms()
    try:
        principal = await core.keys.authenticate(f"Bearer {key}", now)
    except KeyRefused as refused:
        request.state.key_refused = refused  # audited as auth.failed, as the API's refusals are
        return sign_in_page(request, message=f"{refused.message}.", status=401, next_page=next_page)
    if principal.key_type is KeyType.QUEUE:
        return sign_in_page(request, status=403, next_page=next_page, message=QUEUE_KEY_REFUSED)
    team = principal.key_type is KeyType.TEAM  # it chooses its workspace next
    name = "" if team else (await workspaces.get_workspace(core, principal, principal.workspace_id)).name
    sessions = sessions_of(request)
    session = sessions.open(key, principal.key_id, name, now)
    target = f"{CHOOSE}?{urlencode({'next': next_page})}" if team else next_page
    cleared = Cookie(key=SIGN_IN_COOKIE, value="", path=SIGN_IN, max_age=0, httponly=True, samesite="strict")
    return Redirect(target, status_code=303, cookies=[session_cookie(sessions, session, now, secure=secure(request)), cleared])


@post("/logout", opt={ACCESS: PUBLIC})
async def sign_out(request: Request[Any, Any, Any]) -> Redirect:
    """End the session (its CSRF token required) and drop its cookie."""
    session = await live_session(request)
    if session is not None:
        await check_csrf(request, session.csrf)
        await dashboard_sessions.sign_out(core_of(request), session.id, session.expires_at)
    return Redirect(f"{SIGN_IN}?signed_out=1", status_code=303, cookies=[cleared_session_cookie(secure=secure(request))])


@get("/workspaces", opt=mirror(WorkspaceController.list_workspaces))
async def workspaces_page(
    request: Request[Any, Any, Any], principal: Principal, next: str | None = None,  # noqa: A002
) -> Template:
    """A team key's workspaces, to act in one."""
    rows = await workspaces.reachable_workspaces(core_of(request), principal)
    return page(request, principal, "workspaces.html", workspaces=rows, next_page=safe_next(next))


@post("/workspaces", opt=mirror(WorkspaceController.get_workspace))
async def choose_workspace(request: Request[Any, Any, Any], principal: Principal) -> Redirect:
    form = await request.form()
    session, next_page = session_of(request), safe_next(form.get("next"))
    try:
        chosen = await workspaces.get_workspace(core_of(request), principal, str(form.get("workspace") or ""))
    except RotorError as exc:
        session.flash("error", exc.message)
        return Redirect(f"{CHOOSE}?{urlencode({'next': next_page})}", status_code=303)
    session.workspace, session.workspace_name = chosen.id, chosen.name
    return Redirect(next_page, status_code=303)

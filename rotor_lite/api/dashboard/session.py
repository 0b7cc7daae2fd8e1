"""Dashboard sessions: an API key exchanged for a cookie, kept in the server's memory.

The cookie holds only a random token. The session keeps the key itself, so that every request is
authenticated again through the API's authenticator (`core.keys`): a revoked or expired key ends its
sessions on their next request. Sessions end at `dashboard.session_lifetime`, on sign-out, and with
the process (a restart signs everyone out).
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec
from litestar import Request
from litestar.datastructures import Cookie

SESSION_COOKIE = "rotor_session"
SIGN_IN_COOKIE = "rotor_sign_in"  # the CSRF token of the sign-in form, before there is a session
PATH = "/dashboard"
MAX_SESSIONS = 10_000
MAX_FLASHES = 5


class Session(msgspec.Struct, kw_only=True):
    """One signed-in browser: the key it signed in with, the workspace a team key acts in, its CSRF token,
    and the notices to show on its next page."""

    token: str
    api_key: str
    key_id: str
    workspace: str | None  # the workspace a team key acts in (None: a workspace key's own, or not chosen yet)
    workspace_name: str
    csrf: str
    expires_at: int
    flashes: list[tuple[str, str]] = msgspec.field(default_factory=list)  # (kind: ok | error, text)

    def flash(self, kind: str, text: str) -> None:
        self.flashes = [*self.flashes[-MAX_FLASHES + 1:], (kind, text)]

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken


class Sessions:
    """The open sessions of this process, by cookie token."""

    def __init__(self, lifetime_ms: int) -> None:
        self.lifetime_ms = lifetime_ms
        self._open: dict[str, Session] = {}

    def open(self, api_key: str, key_id: str, workspace_name: str, now: int) -> Session:
        """A new session (a team key's chooses its workspace next); the oldest give way beyond MAX_SESSIONS."""
        self._forget_expired(now)
        while len(self._open) >= MAX_SESSIONS:
            del self._open[next(iter(self._open))]
        session = Session(
            token=secrets.token_urlsafe(32), api_key=api_key, key_id=key_id, workspace=None,
            workspace_name=workspace_name,
            csrf=secrets.token_urlsafe(32), expires_at=now + self.lifetime_ms,
        )
        self._open[session.token] = session
        return session

    def get(self, token: str | None, now: int) -> Session | None:
        """The live session of a cookie token (an expired one is ended here)."""
        session = self._open.get(token) if token else None
        if session is not None and session.expires_at <= now:
            self.close(session.token)
            return None
        return session

    def close(self, token: str) -> None:
        self._open.pop(token, None)

    def _forget_expired(self, now: int) -> None:
        for token in [token for token, session in self._open.items() if session.expires_at <= now]:
            del self._open[token]


def is_tls(request: Request[Any, Any, Any], dashboard_url: str) -> bool:
    """Whether the browser reaches the dashboard over TLS: the request's scheme (a trusted proxy's
    X-Forwarded-Proto included), or an https `alerts.dashboard_url`."""
    return request.url.scheme == "https" or dashboard_url.startswith("https://")


def session_cookie(session: Session, now: int, *, secure: bool) -> Cookie:
    """The cookie of a new session: HttpOnly, SameSite=Strict, Secure over TLS, gone when the session ends."""
    return Cookie(
        key=SESSION_COOKIE, value=session.token, path=PATH, httponly=True, samesite="strict", secure=secure,
        max_age=max(1, (session.expires_at - now) // 1000),
    )


def cleared_session_cookie(*, secure: bool) -> Cookie:
    return Cookie(key=SESSION_COOKIE, value="", path=PATH, httponly=True, samesite="strict", secure=secure, max_age=0)


def sign_in_cookie(token: str, *, secure: bool) -> Cookie:
    return Cookie(
        key=SIGN_IN_COOKIE, value=token, path=PATH + "/login", httponly=True, samesite="strict", secure=secure,
        max_age=3600,
    )

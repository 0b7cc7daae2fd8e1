"""Dashboard sessions: an API key exchanged for a sealed cookie, so that any node answers any request.

The cookie holds the session itself, encrypted and authenticated (AES-GCM) under a key derived from the
master key: every node sharing the master key and the database opens it, none needs to remember it. It
carries the key itself, so that every request is authenticated again through the API's authenticator
(`core.keys`): a revoked or expired key ends its sessions on their next request. Sessions end at
`dashboard.session_lifetime`, on sign-out (recorded in the database: a copy of the cookie is refused by
every node too), and all of them with a new master key. A page that changes its session (a notice to show next, the workspace chosen) sends the cookie
again (`reseal`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from litestar import Request
from litestar.datastructures import Cookie

from rotor_lite.crypto import Vault

SESSION_COOKIE = "rotor_session"
SIGN_IN_COOKIE = "rotor_sign_in"  # the CSRF token of the sign-in form, before there is a session
PATH = "/dashboard"
MAX_FLASHES = 5
_CONTEXT = b"dashboard session"


class Session(msgspec.Struct, kw_only=True):
    """One signed-in browser: the key it signed in with, the workspace a team key acts in, its CSRF token,
    and the notices to show on its next page."""

    id: str  # what signing out records, for every node to refuse the cookie from then on
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
    """Seals sessions into cookie values and opens them again, under a key derived from the master key."""

    def __init__(self, lifetime_ms: int, master: Vault) -> None:
        self.lifetime_ms = lifetime_ms
        self._vault = Vault(hmac.new(master.key_bytes, b"rotor-lite dashboard sessions", hashlib.sha256).digest())

    def open(self, api_key: str, key_id: str, workspace_name: str, now: int) -> Session:
        """A new session (a team key's chooses its workspace next)."""
        return Session(
            id=secrets.token_urlsafe(16), api_key=api_key, key_id=key_id, workspace=None, workspace_name=workspace_name,
            csrf=secrets.token_urlsafe(32), expires_at=now + self.lifetime_ms,
        )

    def get(self, cookie: str | None, now: int) -> Session | None:
        """The live session a cookie value seals (None: no cookie, not ours, tampered with, or expired)."""
        if not cookie:
            return None
        try:
            plain = self._vault.decrypt(base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4)), _CONTEXT)
            session = msgspec.json.decode(plain, type=Session)
        except (ValueError, InvalidTag, msgspec.DecodeError):
            return None
        return session if session.expires_at > now else None

    def seal(self, session: Session) -> str:
        return base64.urlsafe_b64encode(self._vault.encrypt(msgspec.json.encode(session), _CONTEXT)).decode().rstrip("=")


def is_tls(request: Request[Any, Any, Any], dashboard_url: str) -> bool:
    """Whether the browser reaches the dashboard over TLS: the request's scheme (a trusted proxy's
    X-Forwarded-Proto included), or an https `alerts.dashboard_url`."""
    return request.url.scheme == "https" or dashboard_url.startswith("https://")


def session_cookie(sessions: Sessions, session: Session, now: int, *, secure: bool) -> Cookie:
    """The cookie of a session: HttpOnly, SameSite=Strict, Secure over TLS, gone when the session ends."""
    return Cookie(
        key=SESSION_COOKIE, value=sessions.seal(session), path=PATH, httponly=True, samesite="strict", secure=secure,
        max_age=max(1, (session.expires_at - now) // 1000),
    )


def cleared_session_cookie(*, secure: bool) -> Cookie:
    return Cookie(key=SESSION_COOKIE, value="", path=PATH, httponly=True, samesite="strict", secure=secure, max_age=0)


def sign_in_cookie(token: str, *, secure: bool) -> Cookie:
    return Cookie(
        key=SIGN_IN_COOKIE, value=token, path=PATH + "/login", httponly=True, samesite="strict", secure=secure,
        max_age=3600,
    )

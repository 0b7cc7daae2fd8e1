"""Signed-out dashboard sessions, shared by every node: a session's cookie is its only copy, so signing out
records the session's id (in `meta`, until the session would have expired) for every node to refuse it."""

from __future__ import annotations

from rotor_lite.store.contract import Conn
from rotor_lite.store.db import Database

_PREFIX = "dashboard_signed_out:"


def _key(session_id: str, expires_at: int) -> str:
    return f"{_PREFIX}{expires_at}:{session_id}"


def sign_out(conn: Conn, session_id: str, expires_at: int, now: int) -> None:
    """Record the session as signed out; forget the records of sessions that have expired since."""
    gone = [key for (key,) in conn.execute("SELECT key FROM meta WHERE key LIKE ?", (_PREFIX + "%",)).fetchall()
            if int(key[len(_PREFIX):].split(":", 1)[0]) <= now]
    conn.executemany("DELETE FROM meta WHERE key = ?", [(key,) for key in gone])
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                 (_key(session_id, expires_at), b""))


async def is_signed_out(db: Database, session_id: str, expires_at: int) -> bool:
    return await db.fetchone("SELECT 1 FROM meta WHERE key = ?", (_key(session_id, expires_at),)) is not None

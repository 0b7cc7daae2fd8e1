"""Signing a dashboard session out on every node at once (the session itself lives in its cookie)."""

from __future__ import annotations

from rotor_lite.services.core import Core
from rotor_lite.store import sessions as store
from rotor_lite.store.contract import Conn


async def sign_out(core: Core, session_id: str, expires_at: int) -> None:
    now = core.clock.now_ms()

    def record(conn: Conn) -> None:
        store.sign_out(conn, session_id, expires_at, now)

    await core.db.write(record)


async def is_signed_out(core: Core, session_id: str, expires_at: int) -> bool:
    return await store.is_signed_out(core.db, session_id, expires_at)

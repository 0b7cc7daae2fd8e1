"""Leadership between nodes on one PostgreSQL: a session advisory lock on a connection of its own.

The lock is the truth: PostgreSQL releases it when the holder's session ends, also when the node is
killed (-9) and its socket closes. The `leader` row is the visible lease the holder renews, for
`/v1/status` and operators; a row whose `expires_at` passed belongs to a node that stopped renewing.
"""

from __future__ import annotations

import zlib

import asyncpg

from rotor_lite.store.contract import Store

CRON_LEADER = "cron"  # fires the schedules' ticks


class AdvisoryLeader:
    """One node's attempt to lead `name`: `try_lead()` until it returns True, then `renew()`."""

    def __init__(self, url: str, name: str, node: str) -> None:
        self._url, self.name, self.node = url, name, node
        self._key = zlib.crc32(f"rotor-lite:leader:{name}".encode())
        self._conn: asyncpg.Connection | None = None
        self.leading = False

    async def try_lead(self, now: int, lease_ms: int) -> bool:
        """Take the lock if free (the lease row follows); False while another node holds it."""
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._url)
        self.leading = bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key))
        if self.leading:
            await self.renew(now, lease_ms)
        return self.leading

    async def renew(self, now: int, lease_ms: int) -> None:
        """Extend the visible lease; raises if the lock's session is gone (leadership lost)."""
        assert self._conn is not None
        await self._conn.execute(
            "INSERT INTO leader (name, node, expires_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (name) DO UPDATE SET node = excluded.node, expires_at = excluded.expires_at",
            self.name, self.node, now + lease_ms,
        )

    async def close(self) -> None:
        """Step down: the session ends, so the lock is free for the next node at once."""
        self.leading = False
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()
        self._conn = None


async def current_leader(db: Store, name: str) -> tuple[str, int] | None:
    """(node, lease expiry) of the last node that led `name`, on PostgreSQL; None if none ever did."""
    row = await db.fetchone("SELECT node, expires_at FROM leader WHERE name = ?", (name,))
    return None if row is None else (str(row[0]), int(row[1]))

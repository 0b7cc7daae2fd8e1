"""The API's rate-limit windows shared by several nodes (PostgreSQL only; one SQLite node counts in memory)."""

from __future__ import annotations

from rotor_lite.store.contract import Store

_COUNT = (
    "INSERT INTO api_rate_window (workspace_id, window_start, count) VALUES (?, ?, 1)"
    " ON CONFLICT (workspace_id, window_start) DO UPDATE SET count = api_rate_window.count + 1"
    " WHERE api_rate_window.count < ? RETURNING count"
)


async def count_request(db: Store, workspace_id: str, window_start: int, limit: int) -> int | None:
    """Count one request in the workspace's window, unless it holds `limit` already: the count after
    it, or None when the limit is reached. One statement, committed on its own: it never waits for a
    node's group commit."""
    row = await db.fetchone(_COUNT, (workspace_id, window_start, limit))
    if row is not None and row[0] == 1:
        await db.fetchone("DELETE FROM api_rate_window WHERE workspace_id = ? AND window_start < ?", (workspace_id, window_start))
    return None if row is None else int(row[0])

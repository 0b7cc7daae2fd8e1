"""The API's rate limit: requests per workspace per fixed one-minute window, at its plan's limit."""

from __future__ import annotations

from rotor_lite.errors import RateLimited
from rotor_lite.store import rate_limits as rate_store
from rotor_lite.store.contract import Store, is_postgres


class RateLimiter:
    """Counts in memory on one SQLite node; in the database when several PostgreSQL nodes share the
    workspace's limit (one statement per limited request)."""

    def __init__(self, db: Store | None = None) -> None:
        self._shared = db if db is not None and is_postgres(db) else None
        self._windows: dict[str, tuple[int, int]] = {}

    async def hit(self, workspace_id: str, per_minute: int, now_s: float) -> tuple[int, int]:
        """Count one request; returns (remaining, reset epoch seconds) or raises RateLimited."""
        window = int(now_s // 60)
        reset_at = (window + 1) * 60
        if self._shared is not None:
            count = await rate_store.count_request(self._shared, workspace_id, window, per_minute)
        else:
            count = self._count_here(workspace_id, window, per_minute)
        if count is None:
            raise RateLimited(max(1, int(reset_at - now_s)), per_minute, reset_at)
        return per_minute - count, reset_at

    def _count_here(self, workspace_id: str, window: int, per_minute: int) -> int | None:
        start, count = self._windows.get(workspace_id, (window, 0))
        if start != window:
            count = 0
        if count >= per_minute:
            return None
        self._windows[workspace_id] = (window, count + 1)
        return count + 1

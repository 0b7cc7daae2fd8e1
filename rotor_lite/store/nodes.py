"""The nodes sharing a PostgreSQL database, as each last reported itself (no table on SQLite)."""

from __future__ import annotations

from rotor_lite.store.contract import Conn

_SEEN = "INSERT INTO cluster_node (node, seen_at) VALUES (?, ?) ON CONFLICT (node) DO UPDATE SET seen_at = excluded.seen_at"


def report_and_count(conn: Conn, node: str, now: int, live_since: int) -> int:
    """Record that `node` is alive at `now`; how many nodes were seen since `live_since` (itself included)."""
    conn.execute(_SEEN, (node, now))
    row = conn.execute("SELECT count(*) FROM cluster_node WHERE seen_at >= ?", (live_since,)).fetchone()
    return max(1, int(row[0]))

"""Jobs per queue and state (`queue_count`), so that counts never scan the jobs table.

Every store function that inserts jobs, deletes them or changes their state calls `shift` in the
same writer transaction, with changes it knows from the statement itself (the states it moved
jobs between, its row count, what it returned). `recount` rebuilds the table from the jobs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from rotor_lite.store.db import Database
from rotor_lite.store.contract import Conn, is_postgres

Changes = Mapping[tuple[int, str], int]  # (queue rowid, state) → jobs added; negative: removed


class Drift(msgspec.Struct, frozen=True, kw_only=True):
    """A counter that disagrees with the jobs table (`queue` is None once the queue is gone)."""

    queue_id: int
    workspace_id: str | None
    queue: str | None
    state: str
    kept: int
    actual: int


_SHIFT = (
    "INSERT INTO queue_count (queue_id, state, n) SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?)"
    " WHERE true ON CONFLICT (queue_id, state) DO UPDATE SET n = n + excluded.n"  # WHERE: the upsert's parse rule
)


_SHIFT_PG = (
    "INSERT INTO queue_count (queue_id, state, n) SELECT CAST(c.value ->> 0 AS BIGINT), c.value ->> 1,"
    " CAST(c.value ->> 2 AS BIGINT) FROM json_each(?) AS c ON CONFLICT (queue_id, state) DO UPDATE SET n = queue_count.n + excluded.n"
)


_LOCK_QUEUES_PG = "SELECT rowid FROM queue WHERE rowid IN (SELECT value FROM json_each(?)) ORDER BY rowid FOR UPDATE"


def shift(conn: Conn, changes: Changes) -> None:
    """Add `changes` to the counters, in one statement.

    In (queue, state) order: on PostgreSQL each row stays locked until the transaction ends, and nodes that
    lock them in one order cannot deadlock on them.
    """
    rows = sorted((queue_id, state, n) for (queue_id, state), n in changes.items() if n)
    if not rows:
        return
    if is_postgres(conn):
        # The queue rows first, as a claim takes them: a node claiming (queue row, then its counters) and one
        # settling (counters, then a claim's queue row) would otherwise each wait for the other.
        conn.execute(_LOCK_QUEUES_PG, (msgspec.json.encode(sorted({row[0] for row in rows})).decode(),))
        conn.execute(_SHIFT_PG, (msgspec.json.encode(rows).decode(),))
    else:
        conn.execute(_SHIFT, (msgspec.json.encode(rows).decode(),))


def move(conn: Conn, queue_rowid: int, source: str, target: str, n: int) -> None:
    """`n` jobs of the queue went from state `source` to `target`."""
    if n and source != target:
        shift(conn, {(queue_rowid, source): -n, (queue_rowid, target): n})


def count(conn: Conn, queue_rowid: int, state: str) -> int:
    """The queue's jobs in `state`, in the caller's transaction."""
    row = conn.execute("SELECT n FROM queue_count WHERE queue_id = ? AND state = ?", (queue_rowid, state)).fetchone()
    return 0 if row is None else int(row[0])


def forget_queue(conn: Conn, queue_rowid: int) -> None:
    conn.execute("DELETE FROM queue_count WHERE queue_id = ?", (queue_rowid,))


async def counts_of(db: Database, queue_rowids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Jobs per state of each queue (states without jobs may be missing)."""
    rows = await db.fetchall(
        "SELECT queue_id, state, n FROM queue_count WHERE queue_id IN (SELECT value FROM json_each(?))",
        (msgspec.json.encode(list(queue_rowids)).decode(),),
    )
    counts: dict[int, dict[str, int]] = {rowid: {} for rowid in queue_rowids}
    for queue_id, state, n in rows:
        counts[queue_id][state] = n
    return counts


_DRIFT = (
    "SELECT d.queue_id, q.workspace_id, q.name, d.state, d.kept, d.actual FROM ("
    " SELECT queue_id, state, sum(kept) AS kept, sum(actual) AS actual FROM ("
    "  SELECT queue_id, state, n AS kept, 0 AS actual FROM queue_count"
    "  UNION ALL SELECT queue_id, state, 0, count(*) FROM job GROUP BY queue_id, state"
    " ) AS c GROUP BY queue_id, state HAVING sum(kept) != sum(actual)"
    ") AS d LEFT JOIN queue AS q ON q.rowid = d.queue_id ORDER BY d.queue_id, d.state"
)


def drift(conn: Conn) -> list[Drift]:
    """The counters that disagree with a full count of the jobs table (none, unless a bug or a hand edit)."""
    return [
        Drift(queue_id=row[0], workspace_id=row[1], queue=row[2], state=row[3], kept=row[4], actual=row[5])
        for row in conn.execute(_DRIFT)
    ]


def recount(conn: Conn) -> list[Drift]:
    """Rebuild the counters from the jobs table; returns the drift it fixed."""
    fixed = drift(conn)
    conn.execute("DELETE FROM queue_count")
    conn.execute(
        "INSERT INTO queue_count (queue_id, state, n) SELECT queue_id, state, count(*) FROM job GROUP BY queue_id, state"
    )
    return fixed

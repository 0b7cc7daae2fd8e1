"""Delivery outcomes per queue and minute (`queue_minute`): the dashboard's throughput and failure-rate charts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from rotor_lite.store.db import Database
from rotor_lite.store.contract import Conn

Tally = tuple[int, int, int, int]  # attempts, errors (attempts that were not a 2xx), completed, failed
_ADD = (
    "INSERT INTO queue_minute (queue_id, minute, attempts, errors, completed, failed)"
    " SELECT CAST(t.value ->> 0 AS BIGINT), CAST(t.value ->> 1 AS BIGINT), CAST(t.value ->> 2 AS BIGINT),"
    " CAST(t.value ->> 3 AS BIGINT), CAST(t.value ->> 4 AS BIGINT), CAST(t.value ->> 5 AS BIGINT) FROM json_each(?) AS t"
    " WHERE true ON CONFLICT (queue_id, minute) DO UPDATE SET attempts = queue_minute.attempts + excluded.attempts,"
    " errors = queue_minute.errors + excluded.errors, completed = queue_minute.completed + excluded.completed,"
    " failed = queue_minute.failed + excluded.failed"
)  # PostgreSQL: typed values, and the table's columns named (a bare one is ambiguous beside `excluded`)


def add(conn: Conn, tallies: Mapping[tuple[int, int], Tally], keep_from_minute: int) -> None:
    """Add the tallies of (queue rowid, minute) to the table, and forget minutes before `keep_from_minute`."""
    if tallies:
        rows = [(queue_id, minute, *tally) for (queue_id, minute), tally in tallies.items()]
        conn.execute(_ADD, (msgspec.json.encode(rows).decode(),))
    conn.execute("DELETE FROM queue_minute WHERE minute < ?", (keep_from_minute,))


async def since(db: Database, queue_rowids: Sequence[int], from_minute: int) -> list[tuple[int, int, Tally]]:
    """(queue rowid, minute, tally) of the queues from `from_minute` on."""
    rows = await db.fetchall(
        "SELECT queue_id, minute, attempts, errors, completed, failed FROM queue_minute"
        " WHERE queue_id IN (SELECT value FROM json_each(?)) AND minute >= ?",
        (msgspec.json.encode(list(queue_rowids)).decode(), from_minute),
    )
    return [(row[0], row[1], (row[2], row[3], row[4], row[5])) for row in rows]

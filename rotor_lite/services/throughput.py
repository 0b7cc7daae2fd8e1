"""Delivery outcomes per queue and minute, for the dashboard's charts of the last hour.

`observe` is an attempt observer: it runs on the writer thread in the transaction that records each
delivery, and only adds to a dict there. The flush (every few seconds, and on the way out) writes the
dict in one statement from the writer thread too, so the hot path pays no extra SQL per job. A chart
is at most one flush interval behind, and a crash loses at most that much of it.
"""

from __future__ import annotations

from collections.abc import Sequence

from rotor_lite.clock import Clock
from rotor_lite.models import Attempt, Claimed, Queue
from rotor_lite.services.periodic import PeriodicFlush
from rotor_lite.store import throughput as store
from rotor_lite.store.db import Database
from rotor_lite.store.throughput import Tally
from rotor_lite.store.contract import Conn

MINUTE_MS = 60_000
HOUR_MINUTES = 60
_KEEP_MINUTES = 24 * 60
_FLUSH_EVERY_S = 5.0


class Throughput(PeriodicFlush):
    """Attempts, errors, completions and terminal failures per (queue, minute), written in batches."""

    def __init__(self, db: Database, clock: Clock) -> None:
        super().__init__("rotor-throughput", _FLUSH_EVERY_S)
        self._db, self._clock = db, clock
        self._pending: dict[tuple[int, int], list[int]] = {}  # touched on the writer thread only

    def observe(self, conn: Conn, queue: Queue, job: Claimed, attempt: Attempt, terminal: bool) -> None:
        """Count one delivery attempt in the minute it ended (an attempt observer: see services/hooks.py)."""
        minute = (attempt.at + attempt.duration_ms) // MINUTE_MS
        tally = self._pending.setdefault((queue.rowid, minute), [0, 0, 0, 0])
        ok = attempt.outcome == "2xx"
        tally[0] += 1
        tally[1] += not ok
        tally[2] += terminal and ok
        tally[3] += terminal and not ok

    async def flush(self) -> None:
        """Write what was counted since the last flush, and forget minutes older than a day."""
        keep_from = self._clock.now_ms() // MINUTE_MS - _KEEP_MINUTES
        await self._db.write(lambda conn: store.add(conn, self._take(), keep_from))

    def _take(self) -> dict[tuple[int, int], Tally]:
        pending, self._pending = self._pending, {}
        return {key: (t[0], t[1], t[2], t[3]) for key, t in pending.items()}


async def last_hour(db: Database, now_ms: int, queue_rowids: Sequence[int]) -> dict[int, list[Tally]]:
    """Each queue's tallies of the last 60 minutes, oldest first, the current minute last."""
    first = now_ms // MINUTE_MS - HOUR_MINUTES + 1
    series: dict[int, list[Tally]] = {rowid: [(0, 0, 0, 0)] * HOUR_MINUTES for rowid in queue_rowids}
    for queue_id, minute, tally in await store.since(db, queue_rowids, first):
        if queue_id in series and minute - first < HOUR_MINUTES:
            series[queue_id][minute - first] = tally
    return series

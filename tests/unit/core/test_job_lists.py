"""Job lists filtered by a tag and a state: the same pages whichever range the store walks.

A real store on a SQLite file. QUEUE: every second job tagged, two in 400 failed: its failed jobs are
walked and checked for the tag. OTHER: 240 failed jobs, 12 of them tagged: its tagged jobs are walked.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rotor_lite.store import counts
from rotor_lite.store import jobs as job_store
from rotor_lite.store.db import Database

QUEUE, OTHER, TAG = 1, 2, "campaign:q2"


def fill(conn: sqlite3.Connection) -> None:
    for rowid in range(1, 12_001):
        queue = OTHER if rowid % 50 == 3 else QUEUE
        state = "failed" if rowid % 400 in (0, 1) or queue == OTHER else "completed"
        conn.execute(
            "INSERT INTO job (rowid, id, queue_id, workspace_id, state, payload, max_attempts, run_at, created_at)"
            " VALUES (?, ?, ?, 'ws', ?, x'7b7d', 3, 0, 0)", (rowid, f"job_{rowid}", queue, state),
        )
        if (queue == QUEUE and rowid % 2 == 0) or rowid % 1_000 == 3:
            conn.execute("INSERT INTO job_tag (queue_id, tag, job_rowid) VALUES (?, ?, ?)", (queue, TAG, rowid))
    counts.recount(conn)


async def pages(db: Database, queues: list[int], states: list[str], limit: int) -> list[list[int]]:
    """Every page of the list, as rowids, following the cursor (the last rowid of a page)."""
    found: list[list[int]] = []
    before = None
    while True:
        rows = await job_store.list_jobs(db, queues, states=states, tag=TAG, before_rowid=before, limit=limit)
        if not rows:
            return found
        found.append([row[0] for row in rows])
        before = rows[-1][0]


@pytest.mark.parametrize("count_max", [20_000, 0], ids=["each-queue-its-cheaper-range", "every-queue-by-state"])
async def test_a_tag_and_a_state_list_the_same_jobs_whichever_range_is_walked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count_max: int,
) -> None:
    monkeypatch.setattr(job_store, "_TAG_COUNT_MAX", count_max)
    async with Database(tmp_path / "rotor.db") as db:
        await db.write(fill)
        walked = await job_store._queues_walked_by_state(db, [QUEUE, OTHER], TAG, ["failed"], 2**63 - 1)
        assert walked == ({QUEUE} if count_max else {QUEUE, OTHER})
        tagged_failed = sorted((r for r in range(1, 12_001) if r % 400 == 0 or r % 1_000 == 3), reverse=True)
        assert [r for page in await pages(db, [QUEUE, OTHER], ["failed"], 7) for r in page] == tagged_failed
        in_queue = [r for r in tagged_failed if r % 1_000 != 3]
        assert [r for page in await pages(db, [QUEUE], ["failed"], 100) for r in page] == in_queue
        both = await pages(db, [QUEUE], ["failed", "completed"], 50)
        assert [r for page in both for r in page][:40] == [r for r in range(12_000, 11_920, -2)]

"""The per-queue job counters: every store function that changes a job's state keeps them equal to a full
count; the migration counts an existing database; `rotor-lite admin recount` rebuilds them and says what drifted."""

from __future__ import annotations

import pytest

import sqlite3
from pathlib import Path

from rotor_lite.models import Attempt, Claimed, Job, JobState, Settlement
from rotor_lite.store import approvals as approval_store
from rotor_lite.store import counts
from rotor_lite.store import guardrails as guardrail_store
from rotor_lite.store import jobs as job_store
from rotor_lite.store import queues as queue_store
from rotor_lite.store.db import _migrations, connect, migrate
from tests.helpers import offline

NOW = 1_000_000
Q1, Q2 = 1, 2


def job(queue_rowid: int, job_id: str, state: JobState = JobState.WAITING, *, key: str | None = None,
        run_at: int = NOW) -> Job:
    return Job(rowid=0, id=job_id, queue_id=queue_rowid, queue_name="q", workspace_id="ws", state=state, payload=b"{}",
               tags=["t"], concurrency_key=key, priority=0, attempts=0, max_attempts=1, run_at=run_at, created_at=NOW)


def claim(conn: sqlite3.Connection, queue_rowid: int, now: int = NOW, lease_ms: int = 30_000) -> list[Claimed]:
    return job_store.acquire_jobs(conn, queue_rowid=queue_rowid, workspace_id="ws", limit=100, owner="node1.boot",
                                  lease_ms=lease_ms, now=now, key_recheck_ms=10_000, key_ttl_ms=300_000)


def settle(conn: sqlite3.Connection, *outcomes: tuple[Claimed, JobState]) -> None:
    attempt = Attempt(attempt=1, at=NOW, duration_ms=5, status=500, outcome="5xx", error="boom")
    job_store.settle_jobs(conn, [Settlement(claimed=c, attempt=attempt, state=state, at=NOW, retry_at=NOW + 5)
                                 for c, state in outcomes])


def read(conn: sqlite3.Connection, queue_rowid: int, job_id: str) -> Job:
    row = job_store.job_row(conn, queue_rowid, job_id)
    assert row is not None
    return job_store.job_from_row(row, "q")


def kept(conn: sqlite3.Connection, queue_rowid: int) -> dict[str, int]:
    rows = conn.execute("SELECT state, n FROM queue_count WHERE queue_id = ? AND n != 0", (queue_rowid,))
    return dict(rows.fetchall())


def test_every_state_change_of_the_store_keeps_the_counters_equal_to_a_full_count(conn: sqlite3.Connection) -> None:
    def changed(step: str, expected: dict[str, int]) -> None:
        assert counts.drift(conn) == [], step
        assert kept(conn, Q1) == expected, step

    job_store.insert_jobs(conn, Q1, [
        job(Q1, "a"), job(Q1, "b"), job(Q1, "k1", key="k"), job(Q1, "k2", key="k"),
        job(Q1, "later", JobState.DELAYED, run_at=NOW + 50), job(Q1, "ask", JobState.PENDING_APPROVAL),
        job(Q1, "deny", JobState.PENDING_APPROVAL), job(Q1, "tone", JobState.SCREENING), job(Q1, "rude", JobState.SCREENING),
        job(Q1, "dnc", JobState.BLOCKED),
    ])
    job_store.insert_jobs(conn, Q2, [job(Q2, "x"), job(Q2, "y", JobState.DELAYED)])
    changed("insert", {"waiting": 4, "delayed": 1, "pending_approval": 2, "screening": 2, "guardrail.blocked": 1})
    a, b, k1 = claim(conn, Q1)
    changed("claim: a held key delays its twin", {"active": 3, "delayed": 2, "pending_approval": 2, "screening": 2,
                                                 "guardrail.blocked": 1})
    settle(conn, (a, JobState.COMPLETED), (b, JobState.FAILED), (k1, JobState.DELAYED))
    changed("settle", {"completed": 1, "failed": 1, "delayed": 3, "pending_approval": 2, "screening": 2,
                       "guardrail.blocked": 1})
    job_store.promote_due(conn, NOW + 100)
    assert kept(conn, Q2) == {"waiting": 2}
    changed("promote due", {"completed": 1, "failed": 1, "waiting": 2, "delayed": 1, "pending_approval": 2,
                            "screening": 2, "guardrail.blocked": 1})
    assert len(claim(conn, Q1, NOW + 100, lease_ms=10)) == 2
    job_store.reap_expired(conn, NOW + 200)
    changed("lease expired", {"completed": 1, "failed": 1, "waiting": 2, "delayed": 1, "pending_approval": 2,
                              "screening": 2, "guardrail.blocked": 1})
    assert len(claim(conn, Q1, NOW + 200)) == 2
    job_store.requeue_orphans(conn, "node1")
    changed("orphans at start", {"completed": 1, "failed": 1, "waiting": 2, "delayed": 1, "pending_approval": 2,
                                 "screening": 2, "guardrail.blocked": 1})
    approval_store.release_approved_job(conn, Q1, "ask", NOW)
    approval_store.fail_rejected_job(conn, Q1, "deny", NOW)
    changed("approvals", {"completed": 1, "failed": 2, "waiting": 3, "delayed": 1, "screening": 2,
                          "guardrail.blocked": 1})
    guardrail_store.release_screened(conn, read(conn, Q1, "tone").rowid, NOW, to_approval=True)
    guardrail_store.block_screened(conn, read(conn, Q1, "rude").rowid, "brand_tone", "rude", NOW)
    guardrail_store.readmit_blocked(conn, Q1, "dnc", "waiting", b"{}", NOW)
    changed("verdicts", {"completed": 1, "failed": 2, "waiting": 4, "delayed": 1, "pending_approval": 1,
                         "guardrail.blocked": 1})
    job_store.set_state(conn, read(conn, Q1, "tone"), JobState.CANCELLED, NOW)
    job_store.set_state(conn, read(conn, Q1, "rude"), JobState.WAITING, NOW)
    job_store.retry_failed(conn, Q1, None, NOW)  # not the rejected one
    changed("cancel and retries", {"completed": 1, "failed": 1, "waiting": 6, "delayed": 1, "cancelled": 1})
    job_store.drain_queue(conn, Q1, NOW)
    changed("drain", {"completed": 1, "failed": 1, "cancelled": 8})
    assert job_store.prune_finished(conn, "ws", NOW + 1, limit=3)["jobs"] == 3
    assert counts.drift(conn) == [] and sum(kept(conn, Q1).values()) == 7, "prune"
    queue_store.delete_queue(conn, Q2)
    assert counts.drift(conn) == [] and kept(conn, Q2) == {}


def test_the_migration_counts_the_jobs_of_an_existing_database(tmp_path: Path) -> None:
    conn = connect(tmp_path / "rotor.db")
    for number, script in _migrations():
        if number < 7:
            conn.executescript(script)
    conn.execute("PRAGMA user_version = 6")
    conn.execute(
        "WITH RECURSIVE seq(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM seq WHERE x < 999)"
        " INSERT INTO job (id, queue_id, workspace_id, state, payload, max_attempts, run_at, created_at)"
        " SELECT 'j' || x, 1 + x % 3, 'ws', CASE WHEN x % 10 = 0 THEN 'failed' ELSE 'completed' END, x'7b7d', 1, 0, 0 FROM seq"
    )
    migrate(conn)
    assert counts.drift(conn) == []
    assert kept(conn, 1) == {"completed": 300, "failed": 34}


@pytest.mark.sqlite_only  # SQLite's own file or query planner
def test_recount_rebuilds_the_counters_and_reports_what_had_drifted(tmp_path: Path) -> None:
    conn = connect(tmp_path / "rotor.db")
    migrate(conn)
    conn.execute("INSERT INTO workspace (id, name, created_at) VALUES ('ws', 'main', 0)")
    conn.execute(
        "INSERT INTO queue (workspace_id, name, concurrency, max_attempts, backoff_type, backoff_delay_ms, timeout_ms,"
        " created_at, updated_at) VALUES ('ws', 'emails', 1, 1, 'fixed', 0, 1000, 0, 0)"
    )
    job_store.insert_jobs(conn, Q1, [job(Q1, "a"), job(Q1, "b")])
    conn.execute("UPDATE queue_count SET n = 5 WHERE queue_id = 1")  # a hand edit, or a bug
    conn.execute("INSERT INTO queue_count (queue_id, state, n) VALUES (9, 'failed', 3)")  # a deleted queue's
    conn.close()

    report = offline(tmp_path, "admin", "recount")
    assert report["fixed"] == [
        {"queueId": 1, "workspace": "ws", "queue": "emails", "state": "waiting", "counted": 5, "actual": 2},
        {"queueId": 9, "workspace": None, "queue": None, "state": "failed", "counted": 3, "actual": 0},
    ]
    assert offline(tmp_path, "admin", "recount") == {"fixed": []}


@pytest.mark.sqlite_only  # SQLite's own file or query planner
def test_the_due_jobs_count_and_the_retention_slice_search_their_partial_indexes(conn: sqlite3.Connection) -> None:
    """Both run inside the writer; a plan that walks a whole index costs seconds at 10M jobs."""
    for sql, params, index in (
        (job_store._DUE_PER_QUEUE, (NOW,), "SEARCH job USING INDEX job_delayed"),
        (job_store._FINISHED_BEFORE, ("ws", NOW, 500), "SEARCH job USING INDEX job_finished"),
    ):
        plan = " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert index in plan and "SCAN job" not in plan, plan

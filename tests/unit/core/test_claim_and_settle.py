"""The claim and outcome statements of the job store, on a real SQLite file made by the migrations."""

from __future__ import annotations

import sqlite3

import pytest
from typing import Any

from rotor_lite.models import Attempt, Claimed, JobState, Settlement
from rotor_lite.store import jobs as job_store

NOW = 1_000_000


def add_job(conn: sqlite3.Connection, job_id: str, *, priority: int = 0, key: str | None = None,
            payload: str = '{"n":1}', schedule_id: str | None = None) -> None:
    conn.execute(
        "INSERT INTO job (id, queue_id, workspace_id, state, payload, concurrency_key, priority, max_attempts, run_at,"
        " created_at, schedule_id) VALUES (?, 1, 'ws', 'waiting', ?, ?, ?, 3, ?, ?, ?)",
        (job_id, payload.encode(), key, priority, NOW, NOW, schedule_id),
    )


def claim(conn: sqlite3.Connection, limit: int = 10, now: int = NOW) -> list[Claimed]:
    return job_store.acquire_jobs(
        conn, queue_rowid=1, workspace_id="ws", limit=limit, owner="me", lease_ms=30_000, now=now,
        key_recheck_ms=10_000, key_ttl_ms=300_000,
    )


def row(conn: sqlite3.Connection, job_id: str) -> dict[str, Any]:
    cursor = conn.execute("SELECT * FROM job WHERE id = ?", (job_id,))
    names = [column[0] for column in cursor.description] if hasattr(cursor, "description") else None
    found = cursor.fetchone()
    return dict(zip(names, found)) if names is not None else dict(found)


def settled(job: Claimed, state: JobState, **fields: Any) -> Settlement:
    attempt = Attempt(attempt=job.attempt, at=NOW, duration_ms=5, status=200, outcome="2xx", error=None)
    return Settlement(claimed=job, attempt=attempt, state=state, at=NOW + 5, **fields)


def test_a_claim_leases_in_priority_order_up_to_the_limit_with_one_token(conn: sqlite3.Connection) -> None:
    add_job(conn, "low", priority=5)
    add_job(conn, "high", priority=1, payload='{"name":"Zoë ☃"}', schedule_id="sched_1")
    add_job(conn, "mid", priority=3)
    got = claim(conn, limit=2)
    assert [job.id for job in got] == ["high", "mid"]
    assert got[0].payload == '{"name":"Zoë ☃"}'.encode() and got[0].schedule_id == "sched_1"
    assert got[0].lease_token == got[1].lease_token and got[0].attempt == 1
    assert (row(conn, "high")["state"], row(conn, "high")["lease_expires_at"]) == ("active", NOW + 30_000)
    assert row(conn, "low")["state"] == "waiting"
    assert claim(conn)[0].lease_token != got[0].lease_token  # unique per claim


def test_a_held_concurrency_key_delays_the_job_without_using_an_attempt(conn: sqlite3.Connection) -> None:
    add_job(conn, "a1", key="k")
    add_job(conn, "a2", key="k")
    add_job(conn, "free")
    assert [job.id for job in claim(conn)] == ["a1", "free"]
    delayed = row(conn, "a2")
    assert (delayed["state"], delayed["run_at"], delayed["attempts"]) == ("delayed", NOW + 10_000, 0)


def test_outcomes_apply_only_while_the_lease_holds(conn: sqlite3.Connection) -> None:
    for job_id in ("done", "retry", "dead", "stale"):
        add_job(conn, job_id, key="k" if job_id == "done" else None)
    jobs = {job.id: job for job in claim(conn)}
    conn.execute("UPDATE job SET lease_owner = 'someone-else' WHERE id = 'stale'")  # reaped and claimed again
    outcomes = [
        settled(jobs["done"], JobState.COMPLETED, result=b'{"ok":"\xc3\xa9"}'),
        settled(jobs["retry"], JobState.DELAYED, reason="HTTP 500", retry_at=NOW + 2000),
        settled(jobs["dead"], JobState.FAILED, reason="HTTP 500"),
        settled(jobs["stale"], JobState.COMPLETED, result=b"{}"),
    ]
    held = job_store.settle_jobs(conn, outcomes)
    assert [s.claimed.id for s in held] == ["done", "retry", "dead"]
    done, retry, dead, stale = (row(conn, job_id) for job_id in ("done", "retry", "dead", "stale"))
    assert (done["state"], done["result"], done["finished_at"], done["attempts"]) == ("completed", b'{"ok":"\xc3\xa9"}', NOW + 5, 1)
    assert (retry["state"], retry["run_at"], retry["fail_reason"], retry["finished_at"]) == ("delayed", NOW + 2000, "HTTP 500", None)
    assert (dead["state"], dead["fail_reason"], dead["finished_at"], dead["result"]) == ("failed", "HTTP 500", NOW + 5, None)
    assert all(r["lease_owner"] is None for r in (done, retry, dead))
    assert (stale["state"], stale["lease_owner"]) == ("active", "someone-else")
    attempts = conn.execute("SELECT job_rowid FROM job_attempt ORDER BY job_rowid").fetchall()
    assert [r[0] for r in attempts] == [jobs["done"].rowid, jobs["retry"].rowid, jobs["dead"].rowid]
    assert conn.execute("SELECT count(*) FROM concurrency_lock").fetchone()[0] == 0


def test_nothing_to_settle_runs_no_statement(conn: sqlite3.Connection) -> None:
    assert job_store.settle_jobs(conn, []) == []


def add_queue(conn: sqlite3.Connection, concurrency: int, state: str = "active") -> None:
    """Queue rowid 1 (the store's claims count every node's active jobs against it under PostgreSQL)."""
    conn.execute("INSERT INTO workspace (id, name, created_at) VALUES ('ws', 'main', 0)")
    conn.execute(
        "INSERT INTO queue (workspace_id, name, concurrency, max_attempts, backoff_type, backoff_delay_ms, timeout_ms,"
        " created_at, updated_at, state) VALUES ('ws', 'q', ?, 1, 'fixed', 0, 1000, 0, 0, ?)", (concurrency, state),
    )


@pytest.mark.postgres_only
def test_a_claim_counts_the_active_jobs_of_every_node_against_the_queue_concurrency(conn: sqlite3.Connection) -> None:
    add_queue(conn, concurrency=2)
    for job_id in ("elsewhere", "a", "b"):
        add_job(conn, job_id)
    conn.execute("UPDATE job SET state = 'active', lease_owner = 'othernode.1:1', lease_expires_at = ? WHERE id = 'elsewhere'",
                 (NOW + 30_000,))
    assert [job.id for job in claim(conn)] == ["a"]
    assert claim(conn) == []


@pytest.mark.postgres_only
def test_a_queue_paused_by_another_node_is_not_claimed_from(conn: sqlite3.Connection) -> None:
    add_queue(conn, concurrency=5, state="paused")
    add_job(conn, "a")
    assert claim(conn) == []


@pytest.mark.postgres_only
def test_at_start_a_node_takes_back_only_the_leases_of_its_own_earlier_processes(conn: sqlite3.Connection) -> None:
    for job_id in ("mine", "theirs", "pulled"):
        add_job(conn, job_id)
    for job_id, owner in (("mine", "node1.oldboot:3"), ("theirs", "node2.boot:1"), ("pulled", "pull-node1.oldboot:2")):
        conn.execute("UPDATE job SET state = 'active', lease_owner = ?, lease_expires_at = ? WHERE id = ?",
                     (owner, NOW + 30_000, job_id))
    assert job_store.requeue_orphans(conn, "node1") == 1
    assert [(r["state"], r["lease_owner"]) for r in map(lambda j: row(conn, j), ("mine", "theirs", "pulled"))] == [
        ("waiting", None), ("active", "node2.boot:1"), ("active", "pull-node1.oldboot:2"),
    ]


def test_a_concurrency_key_held_by_a_live_job_is_not_taken_and_an_expired_one_is(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO concurrency_lock (workspace_id, key, job_rowid, expires_at) VALUES ('ws', 'k', 999, ?)",
                 (NOW + 1,))
    add_job(conn, "a", key="k")
    assert claim(conn) == []
    assert row(conn, "a")["state"] == "delayed"
    conn.execute("UPDATE job SET state = 'waiting' WHERE id = 'a'")
    [job] = claim(conn, now=NOW + 1)
    assert conn.execute("SELECT job_rowid FROM concurrency_lock").fetchone()[0] == job.rowid

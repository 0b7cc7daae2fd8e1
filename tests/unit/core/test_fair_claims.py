"""Fair claims on a real SQLite file: groups served in turn, shares, priorities, rate limits, the cost of a
claim beside a hot group's backlog, and one group key computed alike in Python (insert) and SQL (regroup)."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec
import pytest

from rotor_lite.models import Claimed, Queue, QueueState, RateLimit, BackoffType
from rotor_lite.services import fairness
from rotor_lite.services.fairness import Turns
from rotor_lite.store import counts
from rotor_lite.store import jobs as job_store

NOW = 1_000_000


def pull_queue(rate: RateLimit | None = None) -> Queue:
    return Queue(
        rowid=1, workspace_id="ws", name="q", concurrency=100, max_attempts=3, backoff_type=BackoffType.FIXED,
        backoff_delay_ms=0, callback_url=None, callback_headers={}, callback_secret=None, approval_required=False,
        timeout_ms=30_000, state=QueueState.ACTIVE, created_at=0, updated_at=0, fairness_key="payload.tenant",
        rate_limit=rate,
    )


def add_jobs(conn: sqlite3.Connection, group: str, count: int, *, priority: int = 0, key: str | None = None,
             start: int = 0) -> None:
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?4 - 1)"
        " INSERT INTO job (id, queue_id, workspace_id, state, payload, concurrency_key, priority, max_attempts, run_at,"
        " created_at, group_key) SELECT CAST(?1 AS TEXT) || '-' || CAST(i + ?6 AS TEXT), 1, 'ws', 'waiting', ?8, CAST(?5 AS TEXT),"
        " ?3, 3, ?7 + i, ?7 + i, CAST(?2 AS TEXT) FROM n",
        (group, group, priority, count, key, start, NOW + start, b"{}"),
    )
    counts.shift(conn, {(1, "waiting"): count})


def claim(conn: sqlite3.Connection, turns: Turns, queue: Queue, limit: int, now: int = NOW) -> list[Claimed]:
    return job_store.acquire_jobs(
        conn, queue_rowid=queue.rowid, workspace_id="ws", limit=limit, owner="me", lease_ms=30_000, now=now,
        key_recheck_ms=10_000, key_ttl_ms=300_000, turns=turns.for_claim(queue, now),
    )


def groups(claimed: list[Claimed]) -> list[str]:
    return [job.id.split("-")[0] for job in claimed]


def test_one_job_per_claim_goes_round_the_groups_whatever_their_backlogs(conn: sqlite3.Connection) -> None:
    add_jobs(conn, "big", 1000)
    add_jobs(conn, "a", 2)
    add_jobs(conn, "c", 1)
    turns, queue = Turns(), pull_queue()
    served = [g for _ in range(8) for g in groups(claim(conn, turns, queue, 1))]
    assert served == ["a", "big", "c", "a", "big", "big", "big", "big"]


def test_a_claim_for_more_jobs_than_groups_gives_each_group_an_equal_share_in_turn(conn: sqlite3.Connection) -> None:
    add_jobs(conn, "big", 100)
    add_jobs(conn, "small", 2)
    turns, queue = Turns(), pull_queue()
    got = claim(conn, turns, queue, 10)
    assert groups(got) == ["big", "small", "big", "small", "big", "big", "big", "big", "big", "big"]
    assert [job.id for job in got if job.id.startswith("big")] == [f"big-{i}" for i in range(8)]  # each group in order


def test_priorities_order_the_jobs_within_a_group(conn: sqlite3.Connection) -> None:
    add_jobs(conn, "g", 3, priority=5)
    add_jobs(conn, "g", 1, priority=1, start=10)
    turns, queue = Turns(), pull_queue()
    assert [job.id for job in claim(conn, turns, queue, 2)] == ["g-10", "g-0"]


def test_a_held_concurrency_key_delays_a_job_of_a_fair_queue_too(conn: sqlite3.Connection) -> None:
    add_jobs(conn, "a", 2, key="k")
    add_jobs(conn, "b", 1)
    turns, queue = Turns(), pull_queue()
    assert sorted(job.id for job in claim(conn, turns, queue, 10)) == ["a-0", "b-0"]
    assert conn.execute("SELECT state, run_at FROM job WHERE id = 'a-1'").fetchone() == ("delayed", NOW + 10_000)
    assert counts.drift(conn) == []


def test_a_rate_limited_group_is_skipped_until_its_window_moves_on(conn: sqlite3.Connection) -> None:
    add_jobs(conn, "hot", 50)
    add_jobs(conn, "cold", 50)
    turns, queue = Turns(), pull_queue(RateLimit(key="payload.tenant", max=3, per_ms=1000))
    got = claim(conn, turns, queue, 20)
    assert sorted(groups(got)) == ["cold"] * 3 + ["hot"] * 3
    assert claim(conn, turns, queue, 20, NOW + 999) == []
    assert turns.next_refill(NOW + 999) == NOW + 1000
    assert sorted(groups(claim(conn, turns, queue, 20, NOW + 1000))) == ["cold"] * 3 + ["hot"] * 3
    assert turns.next_refill(NOW + 1000) == NOW + 2000


@pytest.mark.sqlite_only  # counts SQLite's virtual machine steps
def test_a_claim_costs_the_same_beside_a_backlog_of_a_hundred_or_of_a_hundred_thousand(conn: sqlite3.Connection) -> None:
    def cost(backlog: int) -> int:
        conn.execute("DELETE FROM job")
        counts.recount(conn)
        add_jobs(conn, "hot", backlog)
        add_jobs(conn, "x", 5)
        add_jobs(conn, "y", 5)
        turns, queue = Turns(), pull_queue(RateLimit(key="payload.tenant", max=1, per_ms=60_000))
        claim(conn, turns, queue, 3)  # hot, x and y each start one: all three are used up now
        add_jobs(conn, "z", 1)
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        conn.set_progress_handler(count, 100)
        assert groups(claim(conn, turns, queue, 5)) == ["z"]  # found past three used-up groups, one a long backlog
        conn.set_progress_handler(None, 0)
        return steps

    small, large = cost(100), cost(100_000)
    assert large <= small * 1.2 + 2, (small, large)


PAYLOADS: list[Any] = [
    {"tenant": "acme"}, {"tenant": 42}, {"tenant": -7}, {"tenant": 1.5}, {"tenant": True}, {"tenant": None},
    {"tenant": {"id": 1}}, {"tenant": [1]}, {}, [1, 2], "text", {"tenant": "é" * 300}, {"tenant": "x\"y\\z\n"},
    {"tenant": 2**63 - 1}, {"org": {"tenant": "deep"}},
]


@pytest.mark.parametrize("key", ["payload.tenant", "payload.org.tenant", "concurrencyKey"])
def test_the_group_of_a_job_is_the_same_computed_at_insert_or_regrouped_in_sql(conn: sqlite3.Connection, key: str) -> None:
    for n, payload in enumerate(PAYLOADS):
        conn.execute(
            "INSERT INTO job (id, queue_id, workspace_id, state, payload, concurrency_key, max_attempts, run_at,"
            " created_at) VALUES (?, 1, 'ws', 'waiting', ?, ?, 1, 0, 0)",
            (f"j{n}", msgspec.json.encode(payload), None if n % 3 else f"ck{n}"),
        )
    job_store.regroup_jobs(conn, 1, json_path=fairness.json_path(key), by_concurrency_key=key == "concurrencyKey")
    rows = conn.execute("SELECT payload, concurrency_key, group_key FROM job ORDER BY rowid").fetchall()
    assert [group for _, _, group in rows] == [fairness.group_key_of(key, bytes(p), ck) for p, ck, _ in rows]
    job_store.regroup_jobs(conn, 1, json_path=None, by_concurrency_key=False)
    assert conn.execute("SELECT count(*) FROM job WHERE group_key IS NOT NULL").fetchone()[0] == 0


def test_group_keys_are_checked_and_read_as_documented() -> None:
    assert fairness.group_key_of("payload.tenant", b'{"tenant":"acme"}', None) == "acme"
    assert fairness.group_key_of("payload.a.b", b'{"a":{"b":7}}', None) == "7"
    assert fairness.group_key_of("payload.tenant", b'{"tenant":true}', None) == ""
    assert fairness.group_key_of("concurrencyKey", b"{}", "contact:1") == "contact:1"
    assert fairness.json_path("payload.a.b") == '$."a"."b"'
    for wrong in ("tenant", "payload", "payload.", "payload.a b", "data.x", "payload." + ".x" * 9):
        with pytest.raises(Exception, match="payload path"):
            fairness.check_group_key(wrong, "fairness.key")


@pytest.mark.sqlite_only  # SQLite's own file or query planner
def test_a_grouped_job_is_in_one_claim_index_and_every_claim_query_searches_its_own(conn: sqlite3.Connection) -> None:
    add_jobs(conn, "a", 3)
    [waiting] = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'job_waiting'").fetchone()
    assert waiting.endswith("group_key IS NULL")  # an enqueue or a claim of a grouped job maintains job_fair only
    for sql, params, index in (
        (job_store._WAITING_AS_JSON, (1, 10), "job_waiting"),
        (job_store._walk_sql(False, True), (1, "a", 10, "[]", 0), "job_fair"),
    ):
        plan = " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert f"USING INDEX {index}" in plan and "SCAN job" not in plan, plan
    plan = " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN SELECT 1 FROM job WHERE queue_id = 1 AND state = 'waiting' LIMIT 1"))
    assert "SCAN job" not in plan, plan  # has_waiting

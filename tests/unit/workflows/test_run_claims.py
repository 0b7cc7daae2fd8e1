"""The run store's claim rules, on a real SQLite file made by the migrations."""

from __future__ import annotations

import sqlite3
from collections import Counter

from rotor_lite.models import Run, RunStatus, Step, StepStatus, StepType
from rotor_lite.store import runs as store

NOW = 1_000_000


def add_run(conn: sqlite3.Connection, run_id: str, function_id: str, *, due_at: int | None = NOW, workspace: str = "ws") -> int:
    run = Run(
        rowid=0, id=run_id, workspace_id=workspace, function_id=function_id, status=RunStatus.PENDING, event_id="evt",
        event_name="e", event_data=b"{}", event_ts=NOW, attempt=1, output=None, error=None, parent_run_id=None,
        parent_step_rowid=None, idempotency_key=None, replay_of=None, schedule_id=None, hook_errors=None,
        created_at=NOW, started_at=None, ended_at=None,
    )
    return store.insert_run(conn, run, due_at)


def add_step(conn: sqlite3.Connection, run_rowid: int, key: str, status: StepStatus, *, step_type: StepType = StepType.RUN,
             due_at: int | None = NOW) -> int:
    """A step; a hook step's key is `hook:<hook>` and its name the hook's, as the run service stores them."""
    return store.insert_step(conn, Step(
        rowid=0, run_rowid=run_rowid, key=key, name=key.split(":")[step_type == StepType.HOOK], type=step_type,
        status=status, attempts=0,
        output=None, error=None, child_run_id=None, signal=None, event_name=None, started_at=None, ended_at=None,
        due_at=due_at,
    ))


def limited(limits: dict[str, int]) -> tuple[Counter[tuple[str, str]], store.Allowed]:
    """An `allowed` that lets at most limits[function] calls of a function start (no limit for the others)."""
    taken: Counter[tuple[str, str]] = Counter()

    def allowed(key: tuple[str, str]) -> bool:
        if key[1] in limits and taken[key] >= limits[key[1]]:
            return False
        taken[key] += 1
        return True

    return taken, allowed


def claim_runs(conn: sqlite3.Connection, limit: int, allowed: store.Allowed, now: int = NOW) -> list[str]:
    return [call.run_id for call in store.claim_due_runs(conn, now, limit, "me", 30_000, allowed)]


def test_due_runs_are_leased_oldest_first_up_to_the_limit(conn: sqlite3.Connection) -> None:
    add_run(conn, "r_late", "f", due_at=NOW - 1)
    add_run(conn, "r_early", "f", due_at=NOW - 5)
    add_run(conn, "r_future", "f", due_at=NOW + 1)
    add_run(conn, "r_idle", "f", due_at=None)
    _, allowed = limited({})

    assert claim_runs(conn, 5, allowed) == ["r_early", "r_late"]
    assert claim_runs(conn, 5, allowed) == []  # leased: no longer due
    assert claim_runs(conn, 5, allowed, now=NOW + 1) == ["r_future"]
    status, started, lease = conn.execute("SELECT status, started_at, lease_owner FROM run WHERE id = 'r_early'").fetchone()
    assert status == "running" and started == NOW and lease.startswith("me:")


def test_a_run_with_a_step_call_open_is_not_called(conn: sqlite3.Connection) -> None:
    scheduled = add_run(conn, "r_scheduled", "f")
    add_step(conn, scheduled, "a:1", StepStatus.SCHEDULED)
    sleeping = add_run(conn, "r_sleeping", "f")
    add_step(conn, sleeping, "nap:1", StepStatus.SLEEPING, step_type=StepType.SLEEP, due_at=NOW + 1000)
    hooked = add_run(conn, "r_hook", "f")
    add_step(conn, hooked, "hook:on_success", StepStatus.SCHEDULED, step_type=StepType.HOOK)
    _, allowed = limited({})

    assert sorted(claim_runs(conn, 5, allowed)) == ["r_hook", "r_sleeping"]


def test_a_function_at_its_limit_does_not_hide_other_functions_behind_its_backlog(conn: sqlite3.Connection) -> None:
    for n in range(50):
        add_run(conn, f"r_hog_{n:02}", "hog", due_at=NOW - 100 + n)
    add_run(conn, "r_other", "other", due_at=NOW)
    taken, allowed = limited({"hog": 1})

    got = claim_runs(conn, 2, allowed)

    assert got == ["r_hog_00", "r_other"] and taken == {("ws", "hog"): 1, ("ws", "other"): 1}


def test_the_same_function_id_in_another_workspace_has_its_own_limit(conn: sqlite3.Connection) -> None:
    for n in range(20):
        add_run(conn, f"r_a_{n:02}", "fn", due_at=NOW - 100 + n, workspace="ws_a")
    add_run(conn, "r_b", "fn", workspace="ws_b")
    full = {("ws_a", "fn")}

    def allowed(key: tuple[str, str]) -> bool:
        return key not in full

    assert claim_runs(conn, 3, allowed) == ["r_b"]


def test_step_calls_are_claimed_past_a_function_at_its_limit(conn: sqlite3.Connection) -> None:
    hog = add_run(conn, "r_hog", "hog")
    for n in range(30):
        add_step(conn, hog, f"part:{n + 1}", StepStatus.SCHEDULED, due_at=NOW - 100 + n)
    other = add_run(conn, "r_other", "other")
    add_step(conn, other, "hook:on_success", StepStatus.SCHEDULED, step_type=StepType.HOOK)
    _, allowed = limited({"hog": 2})

    calls = store.claim_due_steps(conn, NOW, 3, "me", 30_000, allowed, hook_lease_ms=900_000)

    assert [(c.run_id, c.step_key, c.hook, c.attempt) for c in calls] == [
        ("r_hog", "part:1", None, 1), ("r_hog", "part:2", None, 1), ("r_other", None, "on_success", 1),
    ]
    statuses = dict(conn.execute("SELECT key, status FROM run_step WHERE key IN ('part:1', 'part:3')").fetchall())
    assert statuses == {"part:1": "running", "part:3": "scheduled"}
    leases = dict(conn.execute("SELECT key, lease_expires_at FROM run_step WHERE lease_owner IS NOT NULL").fetchall())
    assert leases == {"part:1": NOW + 30_000, "part:2": NOW + 30_000, "hook:on_success": NOW + 900_000}

"""Workflow runs, their steps, the waiters of waiting steps, signal resolutions and deferred events.

Functions taking a `Conn` run inside the writer's transaction; functions taking a
`Database` read through the reader. A run or a step is due for a call when its `due_at` has come
and no lease holds it; a lease that outlives its owner is put back by `reap_expired`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from rotor_lite.models import Run, RunCall, RunStatus, Step, StepStatus, StepType
from rotor_lite.store.db import Database, conditions
from rotor_lite.store.contract import Conn, is_postgres

_RUN_FIELDS = (
    "id, workspace_id, function_id, status, event_id, event_name, event_data, event_ts, attempt, output,"
    " error, parent_run_id, parent_step_rowid, idempotency_key, replay_of, schedule_id, hook_errors, created_at,"
    " started_at, ended_at"
)
_RUN_COLUMNS = "rowid, " + _RUN_FIELDS
_STEP_COLUMNS = (
    "rowid, run_rowid, key, name, type, status, attempts, output, error, child_run_id, signal, event_name,"
    " started_at, ended_at, due_at"
)
Allowed = Callable[[tuple[str, str]], bool]  # may a call of this (workspace, function) start now? (counts it if so)


def run_from_row(row: Sequence[Any]) -> Run:
    return Run(
        rowid=row[0], id=row[1], workspace_id=row[2], function_id=row[3], status=RunStatus(row[4]), event_id=row[5],
        event_name=row[6], event_data=bytes(row[7]), event_ts=row[8], attempt=row[9],
        output=None if row[10] is None else bytes(row[10]), error=row[11], parent_run_id=row[12],
        parent_step_rowid=row[13], idempotency_key=row[14], replay_of=row[15], schedule_id=row[16],
        hook_errors=row[17], created_at=row[18], started_at=row[19], ended_at=row[20],
    )


def step_from_row(row: Sequence[Any]) -> Step:
    return Step(
        rowid=row[0], run_rowid=row[1], key=row[2], name=row[3], type=StepType(row[4]), status=StepStatus(row[5]),
        attempts=row[6], output=None if row[7] is None else bytes(row[7]), error=row[8], child_run_id=row[9],
        signal=row[10], event_name=row[11], started_at=row[12], ended_at=row[13], due_at=row[14],
    )


# Runs ---------------------------------------------------------------------------------------


def insert_run(conn: Conn, run: Run, due_at: int | None) -> int:
    """Store a new run (due for its first call at `due_at`); returns its rowid."""
    cursor = conn.execute(
        f"INSERT INTO run ({_RUN_FIELDS}, due_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING rowid",
        (
            run.id, run.workspace_id, run.function_id, run.status, run.event_id, run.event_name, run.event_data,
            run.event_ts, run.attempt, run.output, run.error, run.parent_run_id, run.parent_step_rowid,
            run.idempotency_key, run.replay_of, run.schedule_id, run.hook_errors, run.created_at, run.started_at,
            run.ended_at, due_at,
        ),
    )
    return int(cursor.fetchone()[0])


def run_by_idempotency_key(conn: Conn, workspace_id: str, function_id: str, key: str) -> str | None:
    row = conn.execute(
        "SELECT id FROM run WHERE workspace_id = ? AND function_id = ? AND idempotency_key = ?",
        (workspace_id, function_id, key),
    ).fetchone()
    return None if row is None else str(row[0])


def lock_idempotency_key(conn: Conn, workspace_id: str, function_id: str, key: str) -> None:
    """PostgreSQL: hold the key until commit, so that a run another node is starting with it is seen
    (`run_by_idempotency_key` after this reads what committed meanwhile) instead of breaking the
    unique index. SQLite's single writer already serialises them."""
    if is_postgres(conn):
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"run {workspace_id} {function_id} {key}",))


def run_row(conn: Conn, rowid: int) -> Run | None:
    row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM run WHERE rowid = ?", (rowid,)).fetchone()
    return None if row is None else run_from_row(row)


def run_by_id(conn: Conn, workspace_id: str, run_id: str) -> Run | None:
    row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM run WHERE id = ? AND workspace_id = ?", (run_id, workspace_id)).fetchone()
    return None if row is None else run_from_row(row)


def set_due(conn: Conn, run_rowid: int, due_at: int) -> None:
    """The function body must be called again, at `due_at` at the latest (an earlier due time stays)."""
    conn.execute(
        "UPDATE run SET due_at = CASE WHEN due_at < ? THEN due_at ELSE ? END WHERE rowid = ? AND status NOT IN"
        " ('completed', 'failed', 'cancelled')",
        (due_at, due_at, run_rowid),
    )


class RunState(msgspec.Struct, kw_only=True, frozen=True):
    status: RunStatus
    started: bool
    due_or_leased: bool


def run_state(conn: Conn, run_rowid: int) -> RunState | None:
    row = conn.execute(
        "SELECT status, started_at IS NOT NULL, due_at IS NOT NULL OR lease_owner IS NOT NULL FROM run WHERE rowid = ?",
        (run_rowid,),
    ).fetchone()
    return None if row is None else RunState(status=RunStatus(row[0]), started=bool(row[1]), due_or_leased=bool(row[2]))


def has_step_calls(conn: Conn, run_rowid: int) -> bool:
    """True while a step call of the run is scheduled or in flight (hooks aside)."""
    return conn.execute(
        "SELECT 1 FROM run_step WHERE run_rowid = ? AND status IN ('scheduled', 'running') AND type != 'hook' LIMIT 1",
        (run_rowid,),
    ).fetchone() is not None


def set_status(conn: Conn, run_rowid: int, status: RunStatus) -> None:
    conn.execute("UPDATE run SET status = ? WHERE rowid = ?", (status, run_rowid))


def retry_body(conn: Conn, run_rowid: int, due_at: int) -> None:
    """The function body raised and is tried again at `due_at` as its next attempt."""
    conn.execute("UPDATE run SET attempt = attempt + 1, due_at = ? WHERE rowid = ?", (due_at, run_rowid))


def finish_run(
    conn: Conn, run_rowid: int, status: RunStatus, now: int, *, output: bytes | None = None,
    error: str | None = None,
) -> bool:
    """An open run ends; returns False (and changes nothing) if it had already ended."""
    cursor = conn.execute(
        "UPDATE run SET status = ?, ended_at = ?, output = ?, error = ?, due_at = NULL WHERE rowid = ?"
        " AND status NOT IN ('completed', 'failed', 'cancelled')",
        (status, now, output, error, run_rowid),
    )
    return cursor.rowcount == 1


def add_hook_error(conn: Conn, run_rowid: int, entry: dict[str, Any]) -> None:
    row = conn.execute("SELECT hook_errors FROM run WHERE rowid = ?", (run_rowid,)).fetchone()
    entries = msgspec.json.decode(row[0]) if row is not None and row[0] else []
    conn.execute(
        "UPDATE run SET hook_errors = ? WHERE rowid = ?", (msgspec.json.encode([*entries, entry]).decode(), run_rowid)
    )


def open_children(conn: Conn, parent_run_id: str) -> list[int]:
    rows = conn.execute(
        "SELECT rowid FROM run WHERE parent_run_id = ? AND status NOT IN ('completed', 'failed', 'cancelled')",
        (parent_run_id,),
    ).fetchall()
    return [row[0] for row in rows]


def claim_due_runs(
    conn: Conn, now: int, limit: int, owner: str, lease_ms: int, allowed: Allowed
) -> list[RunCall]:
    """Lease the function-body calls that are due (up to `limit`, those `allowed(function key)` lets through).

    A run with a step call scheduled or in flight is not called: it is called once they are done.
    """
    calls = []

    def lease(row: Sequence[Any]) -> bool:
        rowid, run_id, workspace_id, function_id, attempt = row
        token = f"{owner}:r{rowid}:{now}"
        # The lease re-checks that no other node took the call since the page was read.
        if conn.execute(
            "UPDATE run SET due_at = NULL, lease_owner = ?, lease_expires_at = ?, started_at = coalesce(started_at, ?),"
            " status = 'running' WHERE rowid = ? AND lease_owner IS NULL",
            (token, now + lease_ms, now, rowid),
        ).rowcount != 1:
            return False
        calls.append(RunCall(
            run_rowid=rowid, run_id=run_id, workspace_id=workspace_id, function_id=function_id, lease_token=token,
            attempt=attempt,
        ))
        return True

    _lease_due(
        conn, "SELECT rowid, id, workspace_id, function_id, attempt FROM run WHERE due_at <= ? AND lease_owner IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM run_step s WHERE s.run_rowid = run.rowid AND s.status IN ('scheduled', 'running')"
        " AND s.type != 'hook') AND workspace_id || ' ' || function_id NOT IN (SELECT value FROM json_each(?))"
        " ORDER BY due_at LIMIT ?" + (" FOR UPDATE SKIP LOCKED" if is_postgres(conn) else ""),
        now, limit, allowed, lambda row: (row[2], row[3]), lease,
    )
    return calls


def clear_blocked_due(conn: Conn, now: int, limit: int) -> None:
    """Runs that are due but wait for their step calls: not due until those end (keeps the due index honest).

    Only the `limit` runs due first are looked at: a pass must not read a whole backlog of due runs,
    and blocked runs further back come to the front as the runs before them are called.
    """
    conn.execute(
        "UPDATE run SET due_at = NULL WHERE rowid IN (SELECT rowid FROM run WHERE due_at <= ? AND lease_owner IS NULL"
        " ORDER BY due_at LIMIT ?) AND EXISTS (SELECT 1 FROM run_step s WHERE s.run_rowid = run.rowid"
        " AND s.status IN ('scheduled', 'running') AND s.type != 'hook')",
        (now, limit),
    )


def claim_due_steps(
    conn: Conn, now: int, limit: int, owner: str, lease_ms: int, allowed: Allowed, *, hook_lease_ms: int
) -> list[RunCall]:
    """Lease the step calls (run steps started on their own, retries, hooks) that are due.

    A hook's lease is `hook_lease_ms`: a hook is never stopped, so its call may take much longer.
    """
    calls = []

    def lease(row: Sequence[Any]) -> bool:
        step_rowid, key, attempts, name, step_type, run_rowid, run_id, workspace_id, function_id = row
        token = f"{owner}:s{step_rowid}:{now}"
        hook = name if step_type == StepType.HOOK else None
        if conn.execute(
            "UPDATE run_step SET status = 'running', due_at = NULL, lease_owner = ?, lease_expires_at = ?,"
            " attempts = attempts + 1, started_at = coalesce(started_at, ?) WHERE rowid = ? AND lease_owner IS NULL"
            " AND status = 'scheduled'",
            (token, now + (hook_lease_ms if hook else lease_ms), now, step_rowid),
        ).rowcount != 1:
            return False
        calls.append(RunCall(
            run_rowid=run_rowid, run_id=run_id, workspace_id=workspace_id, function_id=function_id, lease_token=token,
            attempt=attempts + 1, step_rowid=step_rowid, step_key=None if hook else key, hook=hook,
        ))
        return True

    _lease_due(
        conn, "SELECT s.rowid, s.key, s.attempts, s.name, s.type, r.rowid, r.id, r.workspace_id, r.function_id"
        " FROM run_step s JOIN run r ON r.rowid = s.run_rowid"
        " WHERE s.due_at <= ? AND s.lease_owner IS NULL AND s.status = 'scheduled'"
        " AND r.workspace_id || ' ' || r.function_id NOT IN (SELECT value FROM json_each(?)) ORDER BY s.due_at LIMIT ?"
        + (" FOR UPDATE OF s SKIP LOCKED" if is_postgres(conn) else ""),
        now, limit, allowed, lambda row: (row[7], row[8]), lease,
    )
    return calls


def _lease_due(
    conn: Conn, query: str, now: int, limit: int, allowed: Allowed,
    key_of: Callable[[Sequence[Any]], tuple[str, str]], lease: Callable[[Sequence[Any]], bool],
) -> None:
    """Lease up to `limit` rows of `query` (due calls, oldest first) that `allowed(function key)` lets through.

    A function `allowed` refuses is at its concurrency limit: the next page leaves its calls out in
    SQL, so that its backlog, however long, never hides the due calls of other functions.
    `query` takes the time, a JSON list of "<workspace> <function>" to leave out, and a row limit.
    `lease` returns False for a row another node leased first (PostgreSQL: the rows it locked are skipped).
    """
    full: set[tuple[str, str]] = set()
    leased = 0
    while leased < limit:
        page = (limit - leased) * 4
        excluded = msgspec.json.encode([f"{workspace} {function}" for workspace, function in full]).decode()
        rows = conn.execute(query, (now, excluded, page)).fetchall()
        for row in rows:
            key = key_of(row)
            if key in full:
                continue
            if not allowed(key):
                full.add(key)
                continue
            if not lease(row):
                continue
            leased += 1
            if leased == limit:
                return
        if len(rows) < page:
            return


def release_run(conn: Conn, call: RunCall) -> bool:
    """End a body call's lease; False when the lease no longer held (its outcome must be dropped)."""
    cursor = conn.execute(
        "UPDATE run SET lease_owner = NULL, lease_expires_at = NULL WHERE rowid = ? AND lease_owner = ?",
        (call.run_rowid, call.lease_token),
    )
    return cursor.rowcount == 1


def release_step(conn: Conn, call: RunCall) -> bool:
    """End a step call's lease; False when the lease no longer held."""
    cursor = conn.execute(
        "UPDATE run_step SET lease_owner = NULL, lease_expires_at = NULL WHERE rowid = ? AND lease_owner = ?",
        (call.step_rowid, call.lease_token),
    )
    return cursor.rowcount == 1


def release_all_leases(conn: Conn, run_rowid: int) -> None:
    conn.execute("UPDATE run SET lease_owner = NULL, lease_expires_at = NULL WHERE rowid = ?", (run_rowid,))
    conn.execute(
        "UPDATE run_step SET lease_owner = NULL, lease_expires_at = NULL WHERE run_rowid = ? AND lease_owner IS NOT NULL",
        (run_rowid,),
    )


def reap_expired(conn: Conn, now: int, *, expired_by: int | None = None) -> int:
    """Calls whose lease ran out by `expired_by` (default now) are due again at `now`; returns how many."""
    return _put_back(conn, now, "lease_expires_at <= ?", now if expired_by is None else expired_by)


def requeue_orphans(conn: Conn, now: int, node_id: str) -> int:
    """At start the calls this node leased before are orphans: each is due again now.

    On SQLite the node is alone with its database, so every leased call is its own. On PostgreSQL
    other nodes' calls are in flight: only leases owned by `node_id` (tokens start "<node_id>.")
    are put back, and the others' wait for their lease to run out (`reap_expired`, on any node).
    """
    if not is_postgres(conn):
        return reap_expired(conn, now, expired_by=2**62)
    return _put_back(conn, now, "lease_owner LIKE ?", node_id + ".%")


def _put_back(conn: Conn, now: int, leases: str, param: Any) -> int:
    """The leased calls `leases` (a condition with one parameter) selects are due again at `now`."""
    runs = conn.execute(
        f"UPDATE run SET lease_owner = NULL, lease_expires_at = NULL, due_at = ? WHERE lease_owner IS NOT NULL AND {leases}",
        (now, param),
    ).rowcount
    steps = conn.execute(
        "UPDATE run_step SET lease_owner = NULL, lease_expires_at = NULL, status = 'scheduled', due_at = ?"
        f" WHERE lease_owner IS NOT NULL AND {leases}",
        (now, param),
    ).rowcount
    return runs + steps


def leased_calls(conn: Conn, workspace_id: str, function_id: str) -> int:
    """How many calls of the function are leased, by every node (PostgreSQL: the function's row stays
    locked until commit, so that two nodes' claims of its calls count one after the other)."""
    conn.execute("SELECT 1 FROM function WHERE workspace_id = ? AND id = ? FOR UPDATE", (workspace_id, function_id))
    row = conn.execute(
        "SELECT (SELECT count(*) FROM run WHERE workspace_id = ? AND function_id = ? AND lease_owner IS NOT NULL)"
        " + (SELECT count(*) FROM run_step s JOIN run r ON r.rowid = s.run_rowid WHERE s.lease_owner IS NOT NULL"
        " AND r.workspace_id = ? AND r.function_id = ?)",
        (workspace_id, function_id, workspace_id, function_id),
    ).fetchone()
    return int(row[0])


def next_due_at(conn: Conn) -> int | None:
    """The earliest moment something is due: a call, a wake-up, a timeout, a deferred event or a lease end."""
    row = conn.execute(
        "SELECT min(t) FROM (SELECT min(due_at) AS t FROM run WHERE due_at IS NOT NULL AND lease_owner IS NULL"
        " UNION ALL SELECT min(due_at) FROM run_step WHERE due_at IS NOT NULL AND lease_owner IS NULL"
        " UNION ALL SELECT min(ts) FROM deferred_event"
        " UNION ALL SELECT min(lease_expires_at) FROM run WHERE lease_owner IS NOT NULL"
        " UNION ALL SELECT min(lease_expires_at) FROM run_step WHERE lease_owner IS NOT NULL) AS due"
    ).fetchone()
    return None if row[0] is None else int(row[0])


def prune_finished(conn: Conn, workspace_id: str, before: int, limit: int = 500) -> dict[str, int]:
    """Delete up to `limit` of the workspace's runs that ended before `before`, with their steps
    (retention); returns the rows deleted per kind, nothing when no run was due."""
    found = conn.execute(
        "SELECT rowid FROM run WHERE workspace_id = ? AND ended_at < ? ORDER BY ended_at LIMIT ?",
        (workspace_id, before, limit),
    ).fetchall()
    if not found:
        return {}
    rowids = msgspec.json.encode([row[0] for row in found]).decode()
    steps = conn.execute("DELETE FROM run_step WHERE run_rowid IN (SELECT value FROM json_each(?))", (rowids,)).rowcount
    runs = conn.execute("DELETE FROM run WHERE rowid IN (SELECT value FROM json_each(?))", (rowids,)).rowcount
    return {"runs": runs, "run_steps": steps}


# Steps ---------------------------------------------------------------------------------------


def steps_of(conn: Conn, run_rowid: int) -> list[Step]:
    rows = conn.execute(f"SELECT {_STEP_COLUMNS} FROM run_step WHERE run_rowid = ? ORDER BY rowid", (run_rowid,))
    return [step_from_row(row) for row in rows]


def step_row(conn: Conn, step_rowid: int) -> Step | None:
    row = conn.execute(f"SELECT {_STEP_COLUMNS} FROM run_step WHERE rowid = ?", (step_rowid,)).fetchone()
    return None if row is None else step_from_row(row)


def step_by_key(conn: Conn, run_rowid: int, key: str) -> Step | None:
    row = conn.execute(f"SELECT {_STEP_COLUMNS} FROM run_step WHERE run_rowid = ? AND key = ?", (run_rowid, key)).fetchone()
    return None if row is None else step_from_row(row)


def count_steps(conn: Conn, run_rowid: int) -> int:
    return int(conn.execute("SELECT count(*) FROM run_step WHERE run_rowid = ? AND type != 'hook'", (run_rowid,)).fetchone()[0])


def insert_step(conn: Conn, step: Step, *, attempts: int = 0) -> int:
    cursor = conn.execute(
        "INSERT INTO run_step (run_rowid, key, name, type, status, attempts, output, error, child_run_id, signal,"
        " event_name, started_at, ended_at, due_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING rowid",
        (
            step.run_rowid, step.key, step.name, step.type, step.status, attempts or step.attempts, step.output,
            step.error, step.child_run_id, step.signal, step.event_name, step.started_at, step.ended_at, step.due_at,
        ),
    )
    return int(cursor.fetchone()[0])


def end_step(
    conn: Conn, step_rowid: int, status: StepStatus, now: int, *, output: bytes | None = None,
    error: str | None = None,
) -> bool:
    """An open step completes, fails or is cancelled; False if it had already ended."""
    cursor = conn.execute(
        "UPDATE run_step SET status = ?, output = ?, error = ?, ended_at = ?, due_at = NULL, lease_owner = NULL,"
        " lease_expires_at = NULL WHERE rowid = ? AND status IN ('scheduled', 'running', 'sleeping', 'waiting')",
        (status, output, error, now, step_rowid),
    )
    return cursor.rowcount == 1


def reschedule_step(conn: Conn, step_rowid: int, due_at: int, error: str | None) -> None:
    """A step's call failed and is tried again at `due_at`."""
    conn.execute(
        "UPDATE run_step SET status = 'scheduled', due_at = ?, error = ?, lease_owner = NULL, lease_expires_at = NULL"
        " WHERE rowid = ?",
        (due_at, error, step_rowid),
    )


def wait_step(conn: Conn, step_rowid: int, status: StepStatus, due_at: int) -> None:
    """The step sleeps or waits until `due_at` (its wake-up or its timeout)."""
    conn.execute("UPDATE run_step SET status = ?, due_at = ? WHERE rowid = ?", (status, due_at, step_rowid))


def set_signal(conn: Conn, step_rowid: int, signal: str) -> None:
    conn.execute("UPDATE run_step SET signal = ? WHERE rowid = ?", (signal, step_rowid))


def set_event_name(conn: Conn, step_rowid: int, event_name: str) -> None:
    conn.execute("UPDATE run_step SET event_name = ? WHERE rowid = ?", (event_name, step_rowid))


def set_child(conn: Conn, step_rowid: int, child_run_id: str) -> None:
    conn.execute("UPDATE run_step SET child_run_id = ? WHERE rowid = ?", (child_run_id, step_rowid))


def cancel_open_steps(conn: Conn, run_rowid: int, now: int) -> None:
    """Steps not yet called, sleeping or waiting are cancelled; a step whose call is in flight finishes."""
    conn.execute(
        "UPDATE run_step SET status = 'cancelled', ended_at = ?, due_at = NULL WHERE run_rowid = ?"
        " AND status IN ('scheduled', 'sleeping', 'waiting') AND type != 'hook'",
        (now, run_rowid),
    )


def open_step_statuses(conn: Conn, run_rowid: int) -> set[str]:
    """The statuses of the run's steps that are not done (hooks aside)."""
    rows = conn.execute(
        "SELECT DISTINCT status FROM run_step WHERE run_rowid = ? AND type != 'hook'"
        " AND status IN ('scheduled', 'running', 'sleeping', 'waiting')",
        (run_rowid,),
    ).fetchall()
    return {row[0] for row in rows}


def due_waits(conn: Conn, now: int, limit: int) -> list[Step]:
    """Sleeping steps whose time has come and waiting steps whose timeout has."""
    rows = conn.execute(
        f"SELECT {_STEP_COLUMNS} FROM run_step WHERE due_at <= ? AND lease_owner IS NULL"
        " AND status IN ('sleeping', 'waiting') ORDER BY due_at LIMIT ?"
        + (" FOR UPDATE SKIP LOCKED" if is_postgres(conn) else ""),  # another node wakes those it locked
        (now, limit),
    ).fetchall()
    return [step_from_row(row) for row in rows]


def copy_completed_steps(conn: Conn, from_run_rowid: int, to_run_rowid: int) -> int:
    """A replay keeps the outcomes of the steps that had completed."""
    return conn.execute(
        "INSERT INTO run_step (run_rowid, key, name, type, status, attempts, output, error, child_run_id, signal,"
        " event_name, started_at, ended_at) SELECT ?, key, name, type, status, attempts, output, error, child_run_id,"
        " signal, event_name, started_at, ended_at FROM run_step WHERE run_rowid = ? AND status = 'completed'"
        " AND type != 'hook'",
        (to_run_rowid, from_run_rowid),
    ).rowcount


# Waiters ---------------------------------------------------------------------------------------


class Waiter(msgspec.Struct, kw_only=True, frozen=True):
    rowid: int
    step_rowid: int
    run_rowid: int
    match: str | None


def add_signal_waiter(conn: Conn, workspace_id: str, step: Step, signal: str, now: int) -> bool:
    """Hold `signal` for this step; False when another active waiter of the workspace holds it.

    A resolution left by an earlier wait on the same id no longer applies: if this wait is deleted
    (its run cancelled), a completion is told the id is unknown (404), not that it is gone (410).
    """
    # DO NOTHING rather than catching the violation: in PostgreSQL that would abort the transaction.
    if conn.execute(
        "INSERT INTO run_waiter (workspace_id, step_rowid, run_rowid, signal, created_at) VALUES (?,?,?,?,?)"
        " ON CONFLICT DO NOTHING",
        (workspace_id, step.rowid, step.run_rowid, signal, now),
    ).rowcount != 1:
        return False
    conn.execute("DELETE FROM signal_resolution WHERE workspace_id = ? AND signal = ?", (workspace_id, signal))
    return True


def add_event_waiter(
    conn: Conn, workspace_id: str, step: Step, event_name: str, match: str | None,
    pin: tuple[str, str] | None, now: int,
) -> None:
    conn.execute(
        "INSERT INTO run_waiter (workspace_id, step_rowid, run_rowid, event_name, match, pin_path, pin_value, created_at)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (workspace_id, step.rowid, step.run_rowid, event_name, match, pin[0] if pin else None, pin[1] if pin else None, now),
    )


def signal_waiter(conn: Conn, workspace_id: str, signal: str) -> tuple[Waiter, str] | None:
    """The active waiter holding `signal`, and its run's id."""
    row = conn.execute(
        "SELECT w.rowid, w.step_rowid, w.run_rowid, r.id FROM run_waiter w JOIN run r ON r.rowid = w.run_rowid"
        " WHERE w.workspace_id = ? AND w.signal = ?",
        (workspace_id, signal),
    ).fetchone()
    return None if row is None else (Waiter(rowid=row[0], step_rowid=row[1], run_rowid=row[2], match=None), row[3])


def event_waiters(
    conn: Conn, workspace_id: str, event_name: str, pins: Sequence[tuple[str, str]]
) -> list[Waiter]:
    """Candidate waiters for an event: those whose pinned equality it satisfies, and those pinning nothing."""
    found = conn.execute(
        "SELECT rowid, step_rowid, run_rowid, match FROM run_waiter WHERE workspace_id = ? AND event_name = ?"
        " AND pin_path IS NULL ORDER BY rowid",
        (workspace_id, event_name),
    ).fetchall()
    for path, value in pins:
        found += conn.execute(
            "SELECT rowid, step_rowid, run_rowid, match FROM run_waiter WHERE workspace_id = ? AND event_name = ?"
            " AND pin_path = ? AND pin_value = ? ORDER BY rowid",
            (workspace_id, event_name, path, value),
        ).fetchall()
    return [Waiter(rowid=row[0], step_rowid=row[1], run_rowid=row[2], match=row[3]) for row in found]


def pinned_paths_of(conn: Conn, workspace_id: str, event_name: str) -> set[str]:
    """The paths the active waiters for this event pin, read in the publishing transaction (PostgreSQL:
    a waiter registered on another node is in the table, not in this node's memory)."""
    rows = conn.execute(
        "SELECT DISTINCT pin_path FROM run_waiter WHERE workspace_id = ? AND event_name = ? AND pin_path IS NOT NULL",
        (workspace_id, event_name),
    ).fetchall()
    return {row[0] for row in rows}


def pinned_paths(conn: Conn) -> list[tuple[str, str, str]]:
    """Every (workspace, event name, pinned path) of the active waiters (loaded once at start)."""
    rows = conn.execute(
        "SELECT DISTINCT workspace_id, event_name, pin_path FROM run_waiter WHERE pin_path IS NOT NULL"
    ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def delete_waiter_of_step(conn: Conn, step_rowid: int) -> None:
    conn.execute("DELETE FROM run_waiter WHERE step_rowid = ?", (step_rowid,))


def delete_waiters_of_run(conn: Conn, run_rowid: int) -> None:
    conn.execute("DELETE FROM run_waiter WHERE run_rowid = ?", (run_rowid,))


def resolve_signal(conn: Conn, workspace_id: str, signal: str, run_id: str, outcome: str, now: int) -> None:
    conn.execute(
        "INSERT INTO signal_resolution (workspace_id, signal, run_id, outcome, resolved_at) VALUES (?,?,?,?,?)"
        " ON CONFLICT (workspace_id, signal) DO UPDATE SET run_id = excluded.run_id, outcome = excluded.outcome,"
        " resolved_at = excluded.resolved_at",
        (workspace_id, signal, run_id, outcome, now),
    )


def signal_resolution(conn: Conn, workspace_id: str, signal: str) -> str | None:
    row = conn.execute(
        "SELECT outcome FROM signal_resolution WHERE workspace_id = ? AND signal = ?", (workspace_id, signal)
    ).fetchone()
    return None if row is None else str(row[0])


# Deferred events ------------------------------------------------------------------------------


class DeferredEvent(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    workspace_id: str
    name: str
    data: bytes
    ts: int
    idempotency_key: str | None = None


def defer_event(conn: Conn, event: DeferredEvent) -> None:
    conn.execute(
        "INSERT INTO deferred_event (id, workspace_id, name, data, ts, idempotency_key) VALUES (?,?,?,?,?,?)",
        (event.id, event.workspace_id, event.name, event.data, event.ts, event.idempotency_key),
    )


def take_due_events(conn: Conn, now: int, limit: int) -> list[DeferredEvent]:
    """The deferred events whose time came (up to `limit`), removed, in the order they were sent for."""
    rows = conn.execute(
        "DELETE FROM deferred_event WHERE rowid IN (SELECT rowid FROM deferred_event WHERE ts <= ? ORDER BY ts LIMIT ?"
        + (" FOR UPDATE SKIP LOCKED)" if is_postgres(conn) else ")") +
        " RETURNING id, workspace_id, name, data, ts, idempotency_key, rowid",
        (now, limit),
    ).fetchall()
    rows.sort(key=lambda r: (r[4], r[6]))
    return [DeferredEvent(id=r[0], workspace_id=r[1], name=r[2], data=bytes(r[3]), ts=r[4], idempotency_key=r[5]) for r in rows]


# Reads ---------------------------------------------------------------------------------------


async def fetch_run(db: Database, workspace_id: str, run_id: str) -> Run | None:
    row = await db.fetchone(f"SELECT {_RUN_COLUMNS} FROM run WHERE id = ? AND workspace_id = ?", (run_id, workspace_id))
    return None if row is None else run_from_row(row)


async def fetch_steps(db: Database, run_rowid: int) -> list[Step]:
    rows = await db.fetchall(f"SELECT {_STEP_COLUMNS} FROM run_step WHERE run_rowid = ? ORDER BY rowid", (run_rowid,))
    return [step_from_row(row) for row in rows]


class AwaitedSignal(msgspec.Struct, frozen=True, kw_only=True):
    """A signal a waiting run holds: what a person may complete."""

    signal: str
    run_id: str
    function_id: str
    step_name: str
    since: int
    timeout_at: int | None
    event_data: bytes


async def awaited_signals(db: Database, workspace_id: str, *, after: str | None, limit: int) -> list[AwaitedSignal]:
    """The workspace's signals that runs wait on, in signal order, after the signal `after`."""
    rows = await db.fetchall(
        "SELECT w.signal, r.id, r.function_id, s.name, w.created_at, s.due_at, r.event_data FROM run_waiter AS w"
        " JOIN run_step AS s ON s.rowid = w.step_rowid JOIN run AS r ON r.rowid = w.run_rowid"
        " WHERE w.workspace_id = ? AND w.signal > ? ORDER BY w.signal LIMIT ?",
        (workspace_id, after or "", limit),
    )
    return [
        AwaitedSignal(signal=row[0], run_id=row[1], function_id=row[2], step_name=row[3], since=row[4],
                      timeout_at=row[5], event_data=bytes(row[6]))
        for row in rows
    ]


async def fetch_children(db: Database, run_id: str) -> list[str]:
    rows = await db.fetchall("SELECT id FROM run WHERE parent_run_id = ? ORDER BY rowid", (run_id,))
    return [row[0] for row in rows]


async def list_runs(
    db: Database, workspace_id: str, *, function_id: str | None, status: str | None, since: int | None,
    until: int | None, before_rowid: int | None, limit: int,
) -> list[Run]:
    where, params = conditions(
        ("workspace_id = ?", workspace_id), ("function_id = ?", function_id), ("status = ?", status),
        ("created_at >= ?", since), ("created_at < ?", until), ("rowid < ?", before_rowid),
    )
    rows = await db.fetchall(f"SELECT {_RUN_COLUMNS} FROM run WHERE {where} ORDER BY rowid DESC LIMIT ?", [*params, limit])
    return [run_from_row(row) for row in rows]

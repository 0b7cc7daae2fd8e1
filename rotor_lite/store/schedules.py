"""Schedule and schedule-run rows.

Functions taking a `Conn` run inside the writer's transaction (`Database.write`);
functions taking a `Database` read through the reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rotor_lite.models import Schedule, ScheduleRun
from rotor_lite.store.db import Database, conditions
from rotor_lite.store.contract import Conn

_COLUMNS = (
    "rowid, id, workspace_id, queue_id, name, cron, timezone, payload, enabled, next_fire_at, last_fired_at,"
    " created_at, updated_at, function_id"
)
_RUN_COLUMNS = "rowid, id, schedule_id, scheduled_for, fired_at, job_id, manual, callback_status, error"


def schedule_from_row(row: Sequence[Any]) -> Schedule:
    return Schedule(
        rowid=row[0], id=row[1], workspace_id=row[2], queue_id=row[3], name=row[4], cron=row[5], timezone=row[6],
        payload=bytes(row[7]), enabled=bool(row[8]), next_fire_at=row[9], last_fired_at=row[10],
        created_at=row[11], updated_at=row[12], function_id=row[13],
    )


def run_from_row(row: Sequence[Any]) -> ScheduleRun:
    return ScheduleRun(
        rowid=row[0], id=row[1], schedule_id=row[2], scheduled_for=row[3], fired_at=row[4], job_id=row[5],
        manual=bool(row[6]), callback_status=row[7], error=row[8],
    )


# Schedules -------------------------------------------------------------------------


def insert_schedule(conn: Conn, schedule: Schedule) -> int:
    """Insert a schedule; a taken name raises IntegrityError."""
    row = conn.execute(
        "INSERT INTO schedule (id, workspace_id, queue_id, name, cron, timezone, payload, enabled, next_fire_at,"
        " last_fired_at, created_at, updated_at, function_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING rowid",
        (
            schedule.id, schedule.workspace_id, schedule.queue_id, schedule.name, schedule.cron, schedule.timezone,
            schedule.payload, int(schedule.enabled), schedule.next_fire_at, schedule.last_fired_at,
            schedule.created_at, schedule.updated_at, schedule.function_id,
        ),
    ).fetchone()
    return int(row[0])  # RETURNING: PostgreSQL has no lastrowid


def update_schedule(conn: Conn, schedule: Schedule) -> None:
    """Write every user-settable field; a taken name raises IntegrityError."""
    conn.execute(
        "UPDATE schedule SET name = ?, cron = ?, timezone = ?, payload = ?, enabled = ?, next_fire_at = ?,"
        " updated_at = ? WHERE rowid = ?",
        (
            schedule.name, schedule.cron, schedule.timezone, schedule.payload, int(schedule.enabled),
            schedule.next_fire_at, schedule.updated_at, schedule.rowid,
        ),
    )


def claim_tick(conn: Conn, seen: Schedule, next_fire_at: int | None) -> bool:
    """Advance a schedule past its due tick, only if it is still as `seen` (same next fire, not edited).

    False means someone else moved it (an edit, a pause, a delete, an earlier pass): do nothing.
    """
    cursor = conn.execute(
        "UPDATE schedule SET next_fire_at = ? WHERE rowid = ? AND next_fire_at = ? AND updated_at = ?",
        (next_fire_at, seen.rowid, seen.next_fire_at, seen.updated_at),
    )
    return cursor.rowcount == 1


def set_last_fired(conn: Conn, rowid: int, last_fired_at: int) -> None:
    conn.execute("UPDATE schedule SET last_fired_at = ? WHERE rowid = ?", (last_fired_at, rowid))


def delete_schedule(conn: Conn, rowid: int) -> None:
    """Delete the schedule; its runs stay as history."""
    conn.execute("DELETE FROM schedule WHERE rowid = ?", (rowid,))


def delete_queue_schedules(conn: Conn, queue_rowid: int) -> int:
    """Delete every schedule of a queue (the queue is being deleted)."""
    return conn.execute("DELETE FROM schedule WHERE queue_id = ?", (queue_rowid,)).rowcount


def schedule_row(conn: Conn, rowid: int) -> Schedule | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM schedule WHERE rowid = ?", (rowid,)).fetchone()
    return None if row is None else schedule_from_row(row)


async def find_schedule(db: Database, workspace_id: str, key: str) -> Schedule | None:
    """The workspace's schedule whose id or name is `key`."""
    row = await db.fetchone(
        f"SELECT {_COLUMNS} FROM schedule WHERE workspace_id = ? AND (id = ? OR name = ?) AND function_id IS NULL",
        (workspace_id, key, key),
    )
    return None if row is None else schedule_from_row(row)


async def list_schedules(
    db: Database, workspace_id: str, *, queue_rowid: int | None, after_rowid: int | None, limit: int
) -> list[Schedule]:
    """The workspace's schedules (optionally of one queue) in creation order; cron functions' are not listed."""
    where, params = conditions(
        ("workspace_id = ?", workspace_id), ("queue_id = ?", queue_rowid), ("rowid > ?", after_rowid)
    )
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM schedule WHERE {where} AND function_id IS NULL ORDER BY rowid LIMIT ?", [*params, limit]
    )
    return [schedule_from_row(row) for row in rows]


async def due_schedules(db: Database, now: int, limit: int) -> list[Schedule]:
    """Enabled schedules whose next fire time has come, earliest first."""
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM schedule WHERE next_fire_at IS NOT NULL AND next_fire_at <= ?"
        " ORDER BY next_fire_at LIMIT ?",
        (now, limit),
    )
    return [schedule_from_row(row) for row in rows]


async def next_due_at(db: Database) -> int | None:
    """The earliest next fire time of any enabled schedule."""
    row = await db.fetchone("SELECT min(next_fire_at) FROM schedule WHERE next_fire_at IS NOT NULL")
    return None if row is None or row[0] is None else int(row[0])


# Runs ------------------------------------------------------------------------------


def tick_recorded(conn: Conn, schedule_id: str, scheduled_for: int) -> bool:
    """Whether the cron tick at `scheduled_for` already has a run (fired or skipped)."""
    row = conn.execute(
        "SELECT 1 FROM schedule_run WHERE schedule_id = ? AND scheduled_for = ? AND manual = 0",
        (schedule_id, scheduled_for),
    ).fetchone()
    return row is not None


def insert_run(conn: Conn, run: ScheduleRun, workspace_id: str, job_rowid: int | None) -> None:
    """Record a run; a second run for one cron tick raises IntegrityError."""
    conn.execute(
        "INSERT INTO schedule_run (id, schedule_id, workspace_id, scheduled_for, fired_at, job_id, job_rowid,"
        " manual, callback_status, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run.id, run.schedule_id, workspace_id, run.scheduled_for, run.fired_at, run.job_id, job_rowid,
            int(run.manual), run.callback_status, run.error,
        ),
    )


def record_delivery(conn: Conn, job_rowid: int, callback_status: str, error: str | None) -> None:
    """The latest delivery outcome of a run's job."""
    conn.execute(
        "UPDATE schedule_run SET callback_status = ?, error = ? WHERE job_rowid = ?",
        (callback_status, error, job_rowid),
    )


async def runs_of(
    db: Database, workspace_id: str, schedule_id: str, *, before_rowid: int | None, limit: int
) -> list[ScheduleRun]:
    """A schedule's runs, newest first (they outlive the schedule, so the workspace is checked here)."""
    sql = f"SELECT {_RUN_COLUMNS} FROM schedule_run WHERE schedule_id = ? AND workspace_id = ?"
    params: list[Any] = [schedule_id, workspace_id]
    if before_rowid is not None:
        sql += " AND rowid < ?"
        params.append(before_rowid)
    rows = await db.fetchall(sql + " ORDER BY rowid DESC LIMIT ?", [*params, limit])
    return [run_from_row(row) for row in rows]


def prune_runs(conn: Conn, before: int, limit: int = 5000) -> int:
    """Delete runs scheduled before `before` (the retention window), at most `limit` at a time."""
    return conn.execute(
        "DELETE FROM schedule_run WHERE rowid IN (SELECT rowid FROM schedule_run WHERE scheduled_for < ? LIMIT ?)",
        (before, limit),
    ).rowcount


def function_schedule(conn: Conn, schedule_id: str) -> Schedule | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM schedule WHERE id = ?", (schedule_id,)).fetchone()
    return None if row is None else schedule_from_row(row)


def set_run_of_tick(conn: Conn, schedule_run_id: str, run_id: str) -> None:
    """The workflow run a cron function's tick started."""
    conn.execute("UPDATE schedule_run SET run_id = ? WHERE id = ?", (run_id, schedule_run_id))

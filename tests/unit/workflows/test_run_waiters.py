"""A run's waiters are reached through an index: ending one run costs the same however many others wait."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rotor_lite.models import StepStatus, StepType
from rotor_lite.store import runs as store
from rotor_lite.store.db import connect, migrate
from tests.unit.workflows.test_run_claims import NOW, add_run, add_step


def waiting_runs(conn: sqlite3.Connection, count: int) -> list[int]:
    """`count` runs, each waiting for its own contact's event; their rowids."""
    rowids = []
    for n in range(count):
        run_rowid = add_run(conn, f"r_{n}", "f", due_at=None)
        step = store.step_row(conn, add_step(conn, run_rowid, "wait:1", StepStatus.WAITING, step_type=StepType.WAIT_FOR_EVENT))
        assert step is not None
        match = f'data.contactId == "c{n}"'
        store.add_event_waiter(conn, "ws", step, "contact.updated", match, ("contactId", f'"c{n}"'), NOW)
        rowids.append(run_rowid)
    return rowids


def cost_of_ending_one(tmp_path: Path, waiting: int) -> int:
    """SQLite VM steps (in tens) of dropping one run's waiters while `waiting` runs wait."""
    conn = connect(tmp_path / f"{waiting}.db", "OFF")
    migrate(conn)
    rowids = waiting_runs(conn, waiting)
    steps = [0]
    conn.set_progress_handler(lambda: steps.__setitem__(0, steps[0] + 1), 10)
    store.delete_waiters_of_run(conn, rowids[waiting // 2])
    conn.set_progress_handler(None, 10)
    assert conn.execute("SELECT count(*) FROM run_waiter").fetchone()[0] == waiting - 1
    conn.close()
    return steps[0]


def test_ending_a_run_among_many_waiting_ones_does_not_read_their_waiters(tmp_path: Path) -> None:
    few, many = cost_of_ending_one(tmp_path, 50), cost_of_ending_one(tmp_path, 5000)
    assert many < 2 * max(few, 1), (few, many)  # every run's end used to scan the whole waiter table

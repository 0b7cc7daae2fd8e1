"""Guardrail config rows, DNC lists, blocked-job counts, and the job-state changes guardrails make.

`PolicyReader` is a read-only connection of its own, used on the event loop thread: a DNC lookup
is a few B-tree probes (microseconds), cheaper than a hop to the aiosqlite reader thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

from rotor_lite.models import JobState
from rotor_lite.store.contract import is_postgres, upsert
from rotor_lite.store import counts
from rotor_lite.store.db import Database
from rotor_lite.store.contract import Conn

DncKind = Literal["emails", "domains"]
_DNC = {"emails": ("dnc_email", "email"), "domains": ("dnc_domain", "domain")}
_CONFIG_COLUMNS = (
    "workspace_id, id, competitor_domains, pii_enabled, pii_mode, pii_types, brand_tone_enabled, brand_tone_rubric,"
    " brand_tone_threshold, updated_at"
)


class ConfigRow(msgspec.Struct, kw_only=True, frozen=True):
    """A workspace's guardrail settings (the DNC lists live in their own tables)."""

    workspace_id: str
    id: str
    competitor_domains: tuple[str, ...] = ()
    pii_enabled: bool = False
    pii_mode: str = "redact"
    pii_types: tuple[str, ...] = ("email", "phone", "ssn", "card")
    brand_tone_enabled: bool = False
    brand_tone_rubric: str = ""
    brand_tone_threshold: float = 0.7
    updated_at: int = 0


def _config_from_row(row: Sequence[Any]) -> ConfigRow:
    return ConfigRow(
        workspace_id=row[0], id=row[1], competitor_domains=tuple(msgspec.json.decode(row[2])), pii_enabled=bool(row[3]),
        pii_mode=row[4], pii_types=tuple(msgspec.json.decode(row[5])), brand_tone_enabled=bool(row[6]),
        brand_tone_rubric=row[7], brand_tone_threshold=float(row[8]), updated_at=row[9],
    )


def config_row(conn: Conn, workspace_id: str) -> ConfigRow | None:
    row = conn.execute(f"SELECT {_CONFIG_COLUMNS} FROM guardrail_config WHERE workspace_id = ?", (workspace_id,)).fetchone()
    return None if row is None else _config_from_row(row)


def save_config(conn: Conn, config: ConfigRow) -> None:
    """Insert or replace the workspace's config row."""
    conn.execute(
        upsert("guardrail_config", _CONFIG_COLUMNS.split(", "), ("workspace_id",)),
        (
            config.workspace_id, config.id, msgspec.json.encode(config.competitor_domains).decode(),
            int(config.pii_enabled), config.pii_mode, msgspec.json.encode(config.pii_types).decode(),
            int(config.brand_tone_enabled), config.brand_tone_rubric, config.brand_tone_threshold, config.updated_at,
        ),
    )


# DNC lists ------------------------------------------------------------------------------


def replace_dnc(conn: Conn, kind: DncKind, workspace_id: str, values: Iterable[str]) -> None:
    """The list becomes exactly `values`."""
    table, _ = _DNC[kind]
    conn.execute(f"DELETE FROM {table} WHERE workspace_id = ?", (workspace_id,))
    append_dnc(conn, kind, workspace_id, values)


def append_dnc(conn: Conn, kind: DncKind, workspace_id: str, values: Iterable[str]) -> int:
    """Add entries (known ones are no-ops); returns how many were new."""
    table, column = _DNC[kind]
    before = conn.total_changes
    conn.executemany(
        f"INSERT OR IGNORE INTO {table} (workspace_id, {column}) VALUES (?, ?)", ((workspace_id, v) for v in values)
    )
    return conn.total_changes - before


def remove_dnc(conn: Conn, kind: DncKind, workspace_id: str, value: str) -> bool:
    table, column = _DNC[kind]
    return conn.execute(f"DELETE FROM {table} WHERE workspace_id = ? AND {column} = ?", (workspace_id, value)).rowcount == 1


async def dnc_page(db: Database, kind: DncKind, workspace_id: str, after: str | None, limit: int) -> list[str]:
    """Entries in order, starting after `after`."""
    table, column = _DNC[kind]
    rows = await db.fetchall(
        f"SELECT {column} FROM {table} WHERE workspace_id = ? AND {column} > ? ORDER BY {column} LIMIT ?",
        (workspace_id, after or "", limit),
    )
    return [row[0] for row in rows]


async def dnc_count(db: Database, kind: DncKind, workspace_id: str) -> int:
    table, _ = _DNC[kind]
    row = await db.fetchone(f"SELECT count(*) FROM {table} WHERE workspace_id = ?", (workspace_id,))
    return int(row[0])


def dnc_hits(conn: Conn, kind: DncKind, workspace_id: str, values: Sequence[str]) -> set[str]:
    """The entries among `values` that are on the list."""
    if not values:
        return set()
    table, column = _DNC[kind]
    # one statement for any number of values, each a primary-key lookup; an IN (…) list costs more
    # (SQLite first builds a temporary index of it), and CROSS JOIN keeps json_each the outer loop
    rows = conn.execute(
        f"SELECT d.{column} FROM json_each(?) AS v CROSS JOIN {table} AS d"
        f" ON d.workspace_id = ? AND d.{column} = v.value",
        (msgspec.json.encode(values).decode(), workspace_id),
    )
    return {row[0] for row in rows}


def has_dnc(conn: Conn, workspace_id: str) -> bool:
    """True when either DNC list of the workspace has an entry."""
    return any(
        conn.execute(f"SELECT 1 FROM {table} WHERE workspace_id = ? LIMIT 1", (workspace_id,)).fetchone()
        for table, _ in _DNC.values()
    )


def open_sqlite_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection to the SQLite file, for `PolicyReader`."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class PolicyReader:
    """A read-only connection for the event loop thread: config loads and DNC probes."""

    def __init__(self, conn: Any) -> None:
        """`conn`: a read connection usable from the loop's thread (`store.backends.open_policy_reader`)."""
        self._conn = conn

    def close(self) -> None:
        self._conn.close()

    def config(self, workspace_id: str) -> ConfigRow | None:
        return config_row(self._conn, workspace_id)

    def has_dnc(self, workspace_id: str) -> bool:
        return has_dnc(self._conn, workspace_id)

    def dnc_hits(self, kind: DncKind, workspace_id: str, values: Sequence[str]) -> set[str]:
        return dnc_hits(self._conn, kind, workspace_id, values)


# Blocked-job counts -----------------------------------------------------------------------


def count_block(conn: Conn, workspace_id: str, day: str, stage: str) -> None:
    conn.execute(
        "INSERT INTO guardrail_block (workspace_id, day, stage, blocked) VALUES (?, ?, ?, 1)"
        " ON CONFLICT (workspace_id, day, stage) DO UPDATE SET blocked = blocked + 1",
        (workspace_id, day, stage),
    )


async def block_counts(db: Database, workspace_id: str, from_day: str, to_day: str) -> list[tuple[str, str, int]]:
    """(day, stage, blocked) from `from_day` to `to_day` inclusive."""
    rows = await db.fetchall(
        "SELECT day, stage, blocked FROM guardrail_block WHERE workspace_id = ? AND day >= ? AND day <= ? ORDER BY day",
        (workspace_id, from_day, to_day),
    )
    return [(row[0], row[1], row[2]) for row in rows]


# Job rows -------------------------------------------------------------------------------------


def mark_blocked(conn: Conn, queue_rowid: int, job_id: str, stage: str, reason: str, now: int) -> None:
    """A job inserted as guardrail.blocked gets its stage and reason."""
    conn.execute(
        "UPDATE job SET blocked_by = ?, block_reason = ?, finished_at = ? WHERE queue_id = ? AND id = ?",
        (stage, reason, now, queue_rowid, job_id),
    )


class Screening(msgspec.Struct, kw_only=True, frozen=True):
    """A job awaiting its brand-tone verdict."""

    rowid: int
    id: str
    queue_id: int
    workspace_id: str
    payload: bytes


_SCREENING_COLUMNS = "rowid, id, queue_id, workspace_id, payload"
# Several nodes: a job in screening is leased to one node's judge (its lease_expires_at, unused while
# screening) so the provider is asked once per job; a judge that dies leaves it to another after the lease.
_CLAIM_SCREENING_PG = (
    "UPDATE job SET lease_expires_at = ? WHERE rowid IN (SELECT rowid FROM job WHERE state = 'screening'"
    " AND (lease_expires_at IS NULL OR lease_expires_at <= ?) AND rowid NOT IN (SELECT value FROM json_each(?))"
    f" ORDER BY rowid LIMIT ? FOR UPDATE SKIP LOCKED) AND state = 'screening' RETURNING {_SCREENING_COLUMNS}"
)


def screening_jobs(conn: Conn, skip: Sequence[int], limit: int, now: int, lease_ms: int) -> list[Screening]:
    """Up to `limit` jobs in state `screening`, oldest first, other than the rowids in `skip`; on
    PostgreSQL only those no other node's judge holds, leased to this one for `lease_ms`."""
    skipped = msgspec.json.encode(list(skip)).decode()
    if is_postgres(conn):
        rows = sorted(conn.execute(_CLAIM_SCREENING_PG, (now + lease_ms, now, skipped, limit)).fetchall(),
                      key=lambda r: int(r[0]))
    else:
        # `+rowid`: with a plain ORDER BY rowid the planner walks the whole table in rowid order
        # (1.2 s at 10M jobs, inside the writer) instead of the small job_screening partial index.
        rows = conn.execute(
            f"SELECT {_SCREENING_COLUMNS} FROM job WHERE state = 'screening'"
            " AND rowid NOT IN (SELECT value FROM json_each(?)) ORDER BY +rowid LIMIT ?",
            (skipped, limit),
        ).fetchall()
    return [Screening(rowid=r[0], id=r[1], queue_id=r[2], workspace_id=r[3], payload=bytes(r[4])) for r in rows]


def release_screened(conn: Conn, rowid: int, now: int, *, to_approval: bool) -> bool:
    """screening → pending_approval, or waiting (delayed until its run_at); False if it left screening."""
    state = "'pending_approval'" if to_approval else "CASE WHEN run_at > ? THEN 'delayed' ELSE 'waiting' END"
    params: tuple[Any, ...] = (rowid,) if to_approval else (now, rowid)
    row = conn.execute(
        f"UPDATE job SET state = {state}, lease_expires_at = NULL WHERE rowid = ? AND state = 'screening'"
        " RETURNING queue_id, state", params
    ).fetchone()
    if row is None:
        return False
    counts.move(conn, row[0], JobState.SCREENING, row[1], 1)
    return True


def block_screened(conn: Conn, rowid: int, stage: str, reason: str, now: int) -> bool:
    """screening → guardrail.blocked; False if it left screening (cancelled) meanwhile."""
    row = conn.execute(
        "UPDATE job SET state = 'guardrail.blocked', blocked_by = ?, block_reason = ?, finished_at = ?,"
        " lease_expires_at = NULL WHERE rowid = ? AND state = 'screening' RETURNING queue_id",
        (stage, reason, now, rowid),
    ).fetchone()
    if row is None:
        return False
    counts.move(conn, row[0], JobState.SCREENING, JobState.BLOCKED, 1)
    return True


def readmit_blocked(
    conn: Conn, queue_rowid: int, job_id: str, state: str, payload: bytes, now: int
) -> bool:
    """A guardrail.blocked job screened again: its new state and payload, attempts reset."""
    changed = conn.execute(
        "UPDATE job SET state = ?, payload = ?, attempts = 0, run_at = ?, started_at = NULL, finished_at = NULL,"
        " fail_reason = NULL, blocked_by = NULL, block_reason = NULL, approval_id = NULL"
        " WHERE queue_id = ? AND id = ? AND state = 'guardrail.blocked'",
        (state, payload, now, queue_rowid, job_id),
    ).rowcount
    counts.move(conn, queue_rowid, JobState.BLOCKED, state, changed)
    return changed == 1

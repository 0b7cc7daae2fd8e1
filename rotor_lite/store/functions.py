"""Function rows (registered workflow functions) and the workspace's signing keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from rotor_lite.models import Function
from rotor_lite.store.db import Database
from rotor_lite.store.contract import Conn, is_postgres

_COLUMNS = (
    "rowid, workspace_id, id, serve_url, trigger_type, trigger_event, cron, timezone, retries, concurrency, hooks,"
    " schedule_id, created_at, updated_at"
)


def function_from_row(row: Sequence[Any]) -> Function:
    return Function(
        rowid=row[0], workspace_id=row[1], id=row[2], serve_url=row[3], trigger_type=row[4], trigger_event=row[5],
        cron=row[6], timezone=row[7], retries=row[8], concurrency=row[9], hooks=msgspec.json.decode(row[10]),
        schedule_id=row[11], created_at=row[12], updated_at=row[13],
    )


def upsert(conn: Conn, fn: Function) -> Function:
    """Insert the function, or replace the one with its id (keeping its created time); returns it as stored."""
    row = conn.execute(
        f"INSERT INTO function ({_COLUMNS.replace('rowid, ', '')}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT (workspace_id, id) DO UPDATE SET serve_url = excluded.serve_url,"
        " trigger_type = excluded.trigger_type, trigger_event = excluded.trigger_event, cron = excluded.cron,"
        " timezone = excluded.timezone, retries = excluded.retries, concurrency = excluded.concurrency,"
        " hooks = excluded.hooks, schedule_id = excluded.schedule_id, updated_at = excluded.updated_at"
        f" RETURNING {_COLUMNS}",
        (
            fn.workspace_id, fn.id, fn.serve_url, fn.trigger_type, fn.trigger_event, fn.cron, fn.timezone, fn.retries,
            fn.concurrency, msgspec.json.encode(fn.hooks).decode(), fn.schedule_id, fn.created_at, fn.updated_at,
        ),
    ).fetchone()
    return function_from_row(row)


def get(conn: Conn, workspace_id: str, function_id: str) -> Function | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM function WHERE workspace_id = ? AND id = ?", (workspace_id, function_id)
    ).fetchone()
    return None if row is None else function_from_row(row)


def triggered_by(conn: Conn, workspace_id: str, event_name: str) -> list[Function]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM function WHERE workspace_id = ? AND trigger_event = ? AND trigger_type = 'event'"
        " ORDER BY id",
        (workspace_id, event_name),
    ).fetchall()
    return [function_from_row(row) for row in rows]


def delete(conn: Conn, rowid: int) -> None:
    conn.execute("DELETE FROM function WHERE rowid = ?", (rowid,))


def all_functions(conn: Conn) -> list[Function]:
    return [function_from_row(row) for row in conn.execute(f"SELECT {_COLUMNS} FROM function")]



async def list_functions(db: Database, workspace_id: str, after_rowid: int | None, limit: int) -> list[Function]:
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM function WHERE workspace_id = ? AND rowid > ? ORDER BY rowid LIMIT ?",
        (workspace_id, after_rowid or 0, limit),
    )
    return [function_from_row(row) for row in rows]


# Signing keys ---------------------------------------------------------------------------


class SigningKeyRow(msgspec.Struct, kw_only=True):
    current: bytes
    previous: bytes | None
    previous_expires: int | None



def all_signing_keys(conn: Conn) -> dict[str, SigningKeyRow]:
    rows = conn.execute("SELECT workspace_id, current, previous, previous_expires FROM signing_key").fetchall()
    return {row[0]: SigningKeyRow(current=row[1], previous=row[2], previous_expires=row[3]) for row in rows}


def _key_row(row: Sequence[Any]) -> SigningKeyRow:
    return SigningKeyRow(current=bytes(row[0]), previous=None if row[1] is None else bytes(row[1]), previous_expires=row[2])


def signing_key_of(conn: Conn, workspace_id: str, *, for_update: bool = False) -> SigningKeyRow | None:
    """The workspace's keys as stored; `for_update` holds the row until commit (PostgreSQL: a rotation
    on another node waits for this one)."""
    row = conn.execute(
        "SELECT current, previous, previous_expires FROM signing_key WHERE workspace_id = ?"
        + (" FOR UPDATE" if for_update and is_postgres(conn) else ""),
        (workspace_id,),
    ).fetchone()
    return None if row is None else _key_row(row)


async def fetch_signing_key(db: Database, workspace_id: str) -> SigningKeyRow | None:
    row = await db.fetchone(
        "SELECT current, previous, previous_expires FROM signing_key WHERE workspace_id = ?", (workspace_id,)
    )
    return None if row is None else _key_row(row)


def add_signing_key(conn: Conn, workspace_id: str, key: SigningKeyRow, now: int) -> None:
    """The workspace's first key, unless one exists already (made meanwhile by another node: it stays)."""
    conn.execute(
        "INSERT INTO signing_key (workspace_id, current, previous, previous_expires, rotated_at) VALUES (?,?,?,?,?)"
        " ON CONFLICT (workspace_id) DO NOTHING",
        (workspace_id, key.current, key.previous, key.previous_expires, now),
    )


def set_signing_key(conn: Conn, workspace_id: str, key: SigningKeyRow, now: int) -> None:
    conn.execute(
        "INSERT INTO signing_key (workspace_id, current, previous, previous_expires, rotated_at) VALUES (?,?,?,?,?)"
        " ON CONFLICT (workspace_id) DO UPDATE SET current = excluded.current, previous = excluded.previous,"
        " previous_expires = excluded.previous_expires, rotated_at = excluded.rotated_at",
        (workspace_id, key.current, key.previous, key.previous_expires, now),
    )

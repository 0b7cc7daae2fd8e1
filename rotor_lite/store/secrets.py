"""Vault rows: one encrypted value per (workspace, name); never a plaintext column."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from rotor_lite.store.db import Database
from rotor_lite.store.contract import Conn


class SecretRow(msgspec.Struct, kw_only=True, frozen=True):
    """A secret's metadata and its ciphertext."""

    workspace_id: str
    name: str
    value: bytes
    hint: str
    created_at: int
    updated_at: int


_COLUMNS = "workspace_id, name, value, hint, created_at, updated_at"


def _from_row(row: Sequence[Any]) -> SecretRow:
    return SecretRow(
        workspace_id=row[0], name=row[1], value=bytes(row[2]), hint=row[3], created_at=row[4], updated_at=row[5]
    )


def insert(conn: Conn, row: SecretRow) -> None:
    """Raises sqlite3.IntegrityError when the name is taken."""
    conn.execute(
        f"INSERT INTO secret ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
        (row.workspace_id, row.name, row.value, row.hint, row.created_at, row.updated_at),
    )


def count(conn: Conn, workspace_id: str) -> int:
    return int(conn.execute("SELECT count(*) FROM secret WHERE workspace_id = ?", (workspace_id,)).fetchone()[0])


def update_value(conn: Conn, workspace_id: str, name: str, value: bytes, hint: str, now: int) -> bool:
    cursor = conn.execute(
        "UPDATE secret SET value = ?, hint = ?, updated_at = ? WHERE workspace_id = ? AND name = ?",
        (value, hint, now, workspace_id, name),
    )
    return cursor.rowcount > 0


def delete(conn: Conn, workspace_id: str, name: str) -> bool:
    cursor = conn.execute("DELETE FROM secret WHERE workspace_id = ? AND name = ?", (workspace_id, name))
    return cursor.rowcount > 0


def get(conn: Conn, workspace_id: str, name: str) -> SecretRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM secret WHERE workspace_id = ? AND name = ?", (workspace_id, name)).fetchone()
    return None if row is None else _from_row(row)


async def fetch(db: Database, workspace_id: str, names: Sequence[str]) -> list[SecretRow]:
    """The rows among `names` that exist."""
    marks = ",".join("?" * len(names))
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM secret WHERE workspace_id = ? AND name IN ({marks})", [workspace_id, *names]
    )
    return [_from_row(row) for row in rows]


async def names_among(db: Database, workspace_id: str, names: Sequence[str]) -> set[str]:
    """The names among `names` that exist."""
    marks = ",".join("?" * len(names))
    rows = await db.fetchall(f"SELECT name FROM secret WHERE workspace_id = ? AND name IN ({marks})", [workspace_id, *names])
    return {row[0] for row in rows}


async def list_all(db: Database, workspace_id: str) -> list[SecretRow]:
    rows = await db.fetchall(f"SELECT {_COLUMNS} FROM secret WHERE workspace_id = ? ORDER BY name", (workspace_id,))
    return [_from_row(row) for row in rows]


def all_ciphertexts(conn: Conn) -> list[tuple[str, str, bytes]]:
    """(workspace, name, ciphertext) of every secret: the master-key rotation re-encrypts them."""
    return [(r[0], r[1], bytes(r[2])) for r in conn.execute("SELECT workspace_id, name, value FROM secret")]


def set_ciphertext(conn: Conn, workspace_id: str, name: str, value: bytes) -> None:
    conn.execute("UPDATE secret SET value = ? WHERE workspace_id = ? AND name = ?", (value, workspace_id, name))

"""Workspaces, API keys and server metadata."""

from __future__ import annotations

import sqlite3
from typing import Any

from rotor_lite.store.db import Database


def get_meta(conn: sqlite3.Connection, key: str) -> bytes | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else bytes(row[0])


def set_meta(conn: sqlite3.Connection, key: str, value: bytes) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def insert_workspace(conn: sqlite3.Connection, ws_id: str, name: str, now: int) -> None:
    conn.execute("INSERT INTO workspace (id, name, created_at) VALUES (?, ?, ?)", (ws_id, name, now))


def workspace_by_name(conn: sqlite3.Connection, name: str) -> tuple[str, str] | None:
    row = conn.execute("SELECT id, name FROM workspace WHERE name = ? OR id = ?", (name, name)).fetchone()
    return None if row is None else (row[0], row[1])


def count_workspaces(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM workspace").fetchone()[0])


def insert_api_key(conn: sqlite3.Connection, **row: Any) -> None:
    conn.execute(
        "INSERT INTO api_key (id, workspace_id, key_hash, key_prefix, label, role, queue_name, created_at, expires_at)"
        " VALUES (:id, :workspace_id, :key_hash, :key_prefix, :label, :role, :queue_name, :created_at, :expires_at)",
        row,
    )


async def api_key_by_hash(db: Database, key_hash: str) -> Any:
    return await db.fetchone(
        "SELECT id, workspace_id, role, queue_name, expires_at, revoked_at FROM api_key WHERE key_hash = ?",
        (key_hash,),
    )


async def workspaces_with_key_prefix(db: Database, key_prefix: str) -> tuple[str, ...]:
    """The workspaces holding a key with this public prefix (to attribute a refused key)."""
    rows = await db.fetchall(
        "SELECT DISTINCT workspace_id FROM api_key WHERE key_prefix = ? ORDER BY workspace_id", (key_prefix,)
    )
    return tuple(row[0] for row in rows)


def touch_api_key(conn: sqlite3.Connection, key_id: str, now: int) -> None:
    conn.execute("UPDATE api_key SET last_used_at = ? WHERE id = ?", (now, key_id))


async def workspace_plan(db: Database, workspace_id: str) -> str:
    row = await db.fetchone("SELECT plan FROM workspace WHERE id = ?", (workspace_id,))
    return "self-hosted" if row is None else str(row[0])


def workspace_ids(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT id FROM workspace ORDER BY id")]


async def find_workspace(db: Database, id_or_name: str) -> tuple[str, str, str, int] | None:
    """(id, name, plan, created_at) of the workspace with that id or name."""
    row = await db.fetchone(
        "SELECT id, name, plan, created_at FROM workspace WHERE id = ? OR name = ?", (id_or_name, id_or_name)
    )
    return None if row is None else (row[0], row[1], row[2], row[3])


async def all_workspaces(db: Database) -> list[tuple[str, str, str, int]]:
    """(id, name, plan, created_at) of every workspace, oldest first."""
    rows = await db.fetchall("SELECT id, name, plan, created_at FROM workspace ORDER BY created_at, id")
    return [(row[0], row[1], row[2], row[3]) for row in rows]

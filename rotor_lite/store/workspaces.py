"""Workspaces, API keys and server metadata."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from rotor_lite.store.contract import upsert
from rotor_lite.store.db import Database
from rotor_lite.store.contract import Conn

_KEY_COLUMNS = "id, workspace_id, key_hash, key_prefix, label, role, queue_name, team, created_at, expires_at," \
               " last_used_at, revoked_at"
_WORKSPACE_COLUMNS = "id, name, plan, created_at"


class ApiKeyRow(msgspec.Struct, kw_only=True, frozen=True):
    """An API key as stored: its hash, never the key; `workspace_id` is the workspace it belongs to."""

    id: str
    workspace_id: str
    key_hash: str
    key_prefix: str
    label: str
    role: str
    queue_name: str | None
    team: bool
    created_at: int
    expires_at: int | None
    last_used_at: int | None
    revoked_at: int | None


class WorkspaceRow(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    name: str
    plan: str
    created_at: int


def _key(row: Any) -> ApiKeyRow:
    return ApiKeyRow(
        id=row[0], workspace_id=row[1], key_hash=row[2], key_prefix=row[3], label=row[4], role=row[5],
        queue_name=row[6], team=bool(row[7]), created_at=row[8], expires_at=row[9], last_used_at=row[10],
        revoked_at=row[11],
    )


def _workspace(row: Any) -> WorkspaceRow:
    return WorkspaceRow(id=row[0], name=row[1], plan=row[2], created_at=row[3])


def get_meta(conn: Conn, key: str) -> bytes | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else bytes(row[0])


def set_meta(conn: Conn, key: str, value: bytes) -> None:
    conn.execute(upsert("meta", ("key", "value"), ("key",)), (key, value))


def insert_workspace(conn: Conn, ws_id: str, name: str, now: int, plan: str = "self-hosted") -> None:
    conn.execute("INSERT INTO workspace (id, name, plan, created_at) VALUES (?, ?, ?, ?)", (ws_id, name, plan, now))


def workspace_by_name(conn: Conn, name: str) -> tuple[str, str] | None:
    row = conn.execute("SELECT id, name FROM workspace WHERE name = ? OR id = ?", (name, name)).fetchone()
    return None if row is None else (row[0], row[1])


def count_workspaces(conn: Conn) -> int:
    return int(conn.execute("SELECT count(*) FROM workspace").fetchone()[0])


async def workspaces_by_id(db: Database, ids: Sequence[str]) -> list[WorkspaceRow]:
    """The workspaces with these ids, by name."""
    marks = ",".join("?" * len(ids))
    rows = await db.fetchall(f"SELECT {_WORKSPACE_COLUMNS} FROM workspace WHERE id IN ({marks}) ORDER BY name", list(ids))
    return [_workspace(row) for row in rows]


def workspace_plans(conn: Conn) -> dict[str, str]:
    return {row[0]: row[1] for row in conn.execute("SELECT id, plan FROM workspace")}


def plan_of(conn: Conn, workspace_id: str) -> str | None:
    row = conn.execute("SELECT plan FROM workspace WHERE id = ?", (workspace_id,)).fetchone()
    return None if row is None else str(row[0])


async def workspace_plan(db: Database, workspace_id: str) -> str | None:
    row = await db.fetchone("SELECT plan FROM workspace WHERE id = ?", (workspace_id,))
    return None if row is None else str(row[0])


def workspace_ids(conn: Conn) -> list[str]:
    return [row[0] for row in conn.execute("SELECT id FROM workspace ORDER BY id")]


def insert_api_key(conn: Conn, row: ApiKeyRow, team_workspaces: Iterable[str] = ()) -> None:
    conn.execute(
        f"INSERT INTO api_key ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (row.id, row.workspace_id, row.key_hash, row.key_prefix, row.label, row.role, row.queue_name, int(row.team),
         row.created_at, row.expires_at, row.last_used_at, row.revoked_at),
    )
    conn.executemany(
        "INSERT INTO api_key_workspace (key_id, workspace_id) VALUES (?, ?)", [(row.id, ws) for ws in team_workspaces]
    )


def add_team_workspace(conn: Conn, key_id: str, workspace_id: str) -> None:
    conn.execute("INSERT OR IGNORE INTO api_key_workspace (key_id, workspace_id) VALUES (?, ?)", (key_id, workspace_id))


async def api_key_by_hash(db: Database, key_hash: str) -> ApiKeyRow | None:
    row = await db.fetchone(f"SELECT {_KEY_COLUMNS} FROM api_key WHERE key_hash = ?", (key_hash,))
    return None if row is None else _key(row)


def api_key_by_id(conn: Conn, key_id: str) -> ApiKeyRow | None:
    row = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_key WHERE id = ?", (key_id,)).fetchone()
    return None if row is None else _key(row)


async def read_api_key(db: Database, key_id: str) -> ApiKeyRow | None:
    row = await db.fetchone(f"SELECT {_KEY_COLUMNS} FROM api_key WHERE id = ?", (key_id,))
    return None if row is None else _key(row)


async def api_keys_of(db: Database, workspace_id: str) -> list[ApiKeyRow]:
    """The keys that belong to a workspace, oldest first."""
    rows = await db.fetchall(
        f"SELECT {_KEY_COLUMNS} FROM api_key WHERE workspace_id = ? ORDER BY created_at, id", (workspace_id,)
    )
    return [_key(row) for row in rows]


async def team_workspaces(db: Database, key_id: str) -> list[tuple[str, str]]:
    """(id, name) of every workspace a team key reaches."""
    rows = await db.fetchall(
        "SELECT w.id, w.name FROM api_key_workspace k JOIN workspace w ON w.id = k.workspace_id"
        " WHERE k.key_id = ? ORDER BY w.name", (key_id,),
    )
    return [(row[0], row[1]) for row in rows]


def team_workspace_ids(conn: Conn, key_id: str) -> list[str]:
    rows = conn.execute("SELECT workspace_id FROM api_key_workspace WHERE key_id = ? ORDER BY workspace_id", (key_id,))
    return [row[0] for row in rows]


async def workspaces_with_key_prefix(db: Database, key_prefix: str) -> tuple[str, ...]:
    """The workspaces holding a key with this public prefix (to attribute a refused key)."""
    rows = await db.fetchall(
        "SELECT DISTINCT workspace_id FROM api_key WHERE key_prefix = ? ORDER BY workspace_id", (key_prefix,)
    )
    return tuple(row[0] for row in rows)


def revoke_api_key(conn: Conn, key_id: str, at: int) -> None:
    """The key stops working at `at` (now, or the end of a rotation's grace); an earlier revocation stands."""
    conn.execute(
        "UPDATE api_key SET revoked_at = ? WHERE id = ? AND (revoked_at IS NULL OR revoked_at > ?)", (at, key_id, at)
    )


def record_last_use(conn: Conn, used: Iterable[tuple[str, int]]) -> None:
    # In key order: two nodes flushing the same keys lock their rows in one order, so never deadlock.
    conn.executemany(
        "UPDATE api_key SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
        [(at, key_id, at) for key_id, at in sorted(used)],
    )


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

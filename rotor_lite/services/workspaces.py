"""Workspaces and API keys: first-start bootstrap, the offline admin commands, authentication."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from typing import Any

import msgspec

from rotor_lite.errors import Conflict, KeyRefused, QueueNotFound, ValidationError, WorkspaceNotFound
from rotor_lite.ids import new_api_key, new_id
from rotor_lite.models import Principal, Role
from rotor_lite.store import queues as queue_store
from rotor_lite.store import workspaces as ws_store
from rotor_lite.store.db import Database

DEFAULT_WORKSPACE = "default"
KEY_PREFIX_LENGTH = 10  # `rt_ws_` and 4 random characters: the public part of a key
_CACHE_SECONDS = 10.0
_TOUCH_EVERY_MS = 60_000


class CreatedKey(msgspec.Struct, kw_only=True):
    """A new key: its plaintext exists only in this value."""

    id: str
    workspace_id: str
    workspace_name: str
    key: str
    label: str
    role: str
    queue: str | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bootstrap(conn: sqlite3.Connection, bootstrap_key: str, now: int) -> CreatedKey | None:
    """On first start create the `default` workspace and its admin key (the configured one, or a new one)."""
    if ws_store.count_workspaces(conn):
        return None
    if bootstrap_key and not bootstrap_key.startswith("rt_"):
        raise ValidationError("auth.bootstrap_api_key must start with 'rt_'", field="auth.bootstrap_api_key")
    return create_workspace(conn, DEFAULT_WORKSPACE, now, key=bootstrap_key or None)


def create_workspace(conn: sqlite3.Connection, name: str, now: int, *, key: str | None = None) -> CreatedKey:
    """A new workspace with its first admin key."""
    if not name or len(name) > 128:
        raise ValidationError("workspace name must be 1 to 128 characters", field="name")
    if ws_store.workspace_by_name(conn, name) is not None:
        raise Conflict(f"workspace '{name}' already exists", {"name": name})
    ws_id = new_id("ws", now)
    ws_store.insert_workspace(conn, ws_id, name, now)
    return _insert_key(conn, ws_id, name, "initial admin key", Role.ADMIN, now, key)


def create_key(
    conn: sqlite3.Connection, workspace: str, label: str, role: Role, now: int, queue: str | None = None
) -> CreatedKey:
    """A new API key for an existing workspace (by name or id); with `queue`, an `rt_q_` key for that queue only."""
    found = ws_store.workspace_by_name(conn, workspace)
    if found is None:
        raise WorkspaceNotFound(workspace)
    if queue is not None and not any(
        row.queue.workspace_id == found[0] and row.queue.name == queue for row in queue_store.all_queues(conn)
    ):
        raise QueueNotFound(queue)
    return _insert_key(conn, found[0], found[1], label, role, now, None, queue)


def _insert_key(
    conn: sqlite3.Connection, ws_id: str, ws_name: str, label: str, role: Role, now: int, key: str | None,
    queue: str | None = None,
) -> CreatedKey:
    key = key or new_api_key("ws" if queue is None else "q")
    key_id = new_id("key", now)
    ws_store.insert_api_key(
        conn, id=key_id, workspace_id=ws_id, key_hash=hash_key(key), key_prefix=key[:KEY_PREFIX_LENGTH],
        label=label, role=role.value, queue_name=queue, created_at=now, expires_at=None,
    )
    return CreatedKey(
        id=key_id, workspace_id=ws_id, workspace_name=ws_name, key=key, label=label, role=role.value, queue=queue
    )


class Authenticator:
    """Bearer key → Principal, with a short cache so the hot path does not read the key table."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: dict[str, tuple[float, Principal, int | None]] = {}
        self._touched: dict[str, int] = {}

    async def authenticate(self, authorization: str | None, now_ms: int) -> Principal:
        """The key's principal, or KeyRefused saying why not and whose key it is when that is known."""
        if not authorization or not authorization.startswith("Bearer "):
            raise KeyRefused("missing bearer token: send 'Authorization: Bearer <api key>'", "missing")
        token = authorization[7:].strip()
        cached = self._cache.get(token)  # by the token itself: hashing it cost more than the rest of this call
        if cached is None or cached[0] < time.monotonic():
            cached = await self._load(token)
        _, principal, expires_at = cached
        if expires_at is not None and expires_at <= now_ms:
            raise KeyRefused("API key has expired", "expired", key_id=principal.key_id,
                             key_prefix=token[:KEY_PREFIX_LENGTH], workspace_ids=(principal.workspace_id,))
        await self._touch(principal.key_id, now_ms)
        return principal

    async def _load(self, token: str) -> tuple[float, Principal, int | None]:
        row = await ws_store.api_key_by_hash(self._db, hash_key(token))
        if row is None or row[5] is not None:
            self._cache.pop(token, None)
            raise await self._refusal(token, row)
        principal = Principal(key_id=row[0], workspace_id=row[1], role=Role(row[2]), queue_name=row[3])
        entry = (time.monotonic() + _CACHE_SECONDS, principal, row[4])
        self._cache[token] = entry
        return entry

    async def _refusal(self, token: str, revoked: Any) -> KeyRefused:
        prefix = token[:KEY_PREFIX_LENGTH]
        if revoked is not None:
            return KeyRefused("invalid API key", "revoked", key_id=revoked[0], key_prefix=prefix,
                              workspace_ids=(revoked[1],))
        # An unknown key whose public prefix is a real key's (a mistyped or forged key) is still
        # traced to that key's workspace; any other part of an unknown key is never kept.
        owners = await ws_store.workspaces_with_key_prefix(self._db, prefix)
        return KeyRefused("invalid API key", "invalid", key_prefix=prefix if owners else None, workspace_ids=owners)

    async def _touch(self, key_id: str, now_ms: int) -> None:
        if now_ms - self._touched.get(key_id, 0) < _TOUCH_EVERY_MS:
            return
        self._touched[key_id] = now_ms
        await self._db.write(lambda conn: ws_store.touch_api_key(conn, key_id, now_ms))

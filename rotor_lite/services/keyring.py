"""API keys: minting (only a hash is kept), and authenticating a bearer key with a short cache.

A key works until it expires or its revocation time passes (a rotated key's revocation lies at
the end of its grace period). When each key was last used is kept in memory and written at most
once a minute by a background task, so no request waits for that write.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import msgspec

from rotor_lite.errors import KeyRefused, WorkspaceNotFound
from rotor_lite.ids import new_api_key, new_id
from rotor_lite.models import KeyType, Principal, Role, key_type_of
from rotor_lite.services.periodic import PeriodicFlush
from rotor_lite.store import workspaces as ws_store
from rotor_lite.store.db import Database
from rotor_lite.store.workspaces import ApiKeyRow
from rotor_lite.store.contract import Conn

_CACHE_SECONDS = 10.0
_FLUSH_LAST_USE_EVERY_S = 60.0  # so `last_used_at` is written at most once a minute per key
_KIND = {KeyType.WORKSPACE: "ws", KeyType.QUEUE: "q", KeyType.TEAM: "team"}
DEFAULT_EXPIRY_DAYS = 90
DAY_MS = 86_400_000


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


def key_prefix(key: str) -> str:
    """The public part of a key, shown in lists: its kind and 4 random characters (`rt_team_AbCd`)."""
    kind_end = key.find("_", 3)
    return key[: kind_end + 5] if kind_end > 0 else key[:10]


def default_expiry(now: int, creator: Principal) -> int:
    """When a new key made by `creator` expires unless told otherwise: in 90 days, and never after its creator."""
    expires_at = now + DEFAULT_EXPIRY_DAYS * DAY_MS
    return expires_at if creator.expires_at is None else min(expires_at, creator.expires_at)


def mint_key(
    conn: Conn, *, workspace: tuple[str, str], label: str, role: Role, now: int,
    queue: str | None = None, team_workspaces: tuple[str, ...] = (), expires_at: int | None = None,
    key: str | None = None,
) -> CreatedKey:
    """Store a new key of `workspace` (id, name): only its hash and public prefix are kept."""
    key = key or new_api_key(_KIND[key_type_of(bool(team_workspaces), queue)])
    key_id = new_id("key", now)
    row = ApiKeyRow(
        id=key_id, workspace_id=workspace[0], key_hash=hash_key(key), key_prefix=key_prefix(key), label=label,
        role=role.value, queue_name=queue, team=bool(team_workspaces), created_at=now, expires_at=expires_at,
        last_used_at=None, revoked_at=None,
    )
    ws_store.insert_api_key(conn, row, team_workspaces)
    return CreatedKey(id=key_id, workspace_id=workspace[0], workspace_name=workspace[1], key=key, label=label,
                      role=role.value, queue=queue)


class _Entry(msgspec.Struct, kw_only=True):
    """A cached key: its row, its principal in its own workspace, and every workspace it reaches by id and name."""

    fresh_until: float
    row: ApiKeyRow
    principal: Principal
    reach: dict[str, str]  # id or name -> id


class Authenticator(PeriodicFlush):
    """Bearer key → Principal, with a short cache so the hot path does not read the key table."""

    def __init__(self, db: Database) -> None:
        super().__init__("rotor-key-usage", _FLUSH_LAST_USE_EVERY_S)
        self._db = db
        self._cache: dict[str, _Entry] = {}
        self._used: dict[str, int] = {}  # key id -> last use (ms), not yet written
        self._seen: dict[str, int] = {}  # key id -> last use (ms) seen by this process

    async def authenticate(self, authorization: str | None, now_ms: int, workspace: str | None = None) -> Principal:
        """The key's principal acting in `workspace` (a team key's choice; else the key's own workspace), or
        KeyRefused saying why not and whose key it is when that is known."""
        if not authorization or not authorization.startswith("Bearer "):
            raise KeyRefused("missing bearer token: send 'Authorization: Bearer <api key>'", "missing")
        token = authorization[7:].strip()
        entry = self._cache.get(token)  # by the token itself: hashing it cost more than the rest of this call
        if entry is None or entry.fresh_until < time.monotonic():
            entry = await self._load(token)
        row = entry.row
        if row.revoked_at is not None and row.revoked_at <= now_ms:
            raise _refused("API key has been revoked", "revoked", row)
        if row.expires_at is not None and row.expires_at <= now_ms:
            raise _refused("API key has expired", "expired", row)
        self._used[row.id] = self._seen[row.id] = now_ms
        return entry.principal if workspace is None else _acting_in(entry, workspace)

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (revoked, rotated, or given a new workspace): the next request reads it."""
        for token in [token for token, entry in self._cache.items() if entry.row.id == key_id]:
            del self._cache[token]

    def forget_all(self) -> None:
        """Drop every cached key: another node changed some."""
        self._cache.clear()

    def last_used(self, key_id: str) -> int | None:
        """When this process last saw the key, if it did (newer than the stored value until the next flush)."""
        return self._seen.get(key_id)

    async def flush(self) -> None:
        """Write the last uses seen since the previous flush, in one transaction."""
        used, self._used = self._used, {}
        if used:
            await self._db.write(lambda conn: ws_store.record_last_use(conn, used.items()))

    async def _load(self, token: str) -> _Entry:
        digest = hash_key(token)
        row = await ws_store.api_key_by_hash(self._db, digest)
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            self._cache.pop(token, None)
            raise await self._unknown(token)
        if row.team:
            workspaces = await ws_store.team_workspaces(self._db, row.id)
        else:
            workspaces = [(found.id, found.name) for found in await ws_store.workspaces_by_id(self._db, [row.workspace_id])]
        reach = {name: ws_id for ws_id, name in workspaces} | {ws_id: ws_id for ws_id, _ in workspaces}
        principal = Principal(
            key_id=row.id, workspace_id=row.workspace_id, role=Role(row.role), queue_name=row.queue_name,
            team_workspaces=tuple(sorted(ws_id for ws_id, _ in workspaces)) if row.team else (), expires_at=row.expires_at,
        )
        entry = _Entry(fresh_until=time.monotonic() + _CACHE_SECONDS, row=row, principal=principal, reach=reach)
        self._cache[token] = entry
        return entry

    async def _unknown(self, token: str) -> KeyRefused:
        # An unknown key whose public prefix is a real key's (a mistyped or forged key) is still
        # traced to that key's workspace; any other part of an unknown key is never kept.
        prefix = key_prefix(token)
        owners = await ws_store.workspaces_with_key_prefix(self._db, prefix)
        return KeyRefused("invalid API key", "invalid", key_prefix=prefix if owners else None, workspace_ids=owners)


def _refused(message: str, reason: str, row: ApiKeyRow) -> KeyRefused:
    return KeyRefused(message, reason, key_id=row.id, key_prefix=row.key_prefix, workspace_ids=(row.workspace_id,))


def _acting_in(entry: _Entry, workspace: str) -> Principal:
    """The key's principal in the workspace a request names (id or name): one the key reaches, else not found."""
    chosen = entry.reach.get(workspace)
    if chosen is None:
        raise WorkspaceNotFound(workspace)
    return entry.principal if chosen == entry.principal.workspace_id else msgspec.structs.replace(
        entry.principal, workspace_id=chosen
    )

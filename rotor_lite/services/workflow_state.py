"""What the workflow engine keeps in memory: the functions, the signing keys, the pinned waiter paths.

All three are loaded from the database at start and kept current by the services that change them,
so the run driver and the event path never read a table for them.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from rotor_lite.crypto import Vault
from rotor_lite.models import Function
from rotor_lite.store import functions as function_store
from rotor_lite.store import runs as run_store
from rotor_lite.store.contract import Conn
from rotor_lite.store.db import Database

_SIGNING_KEY_AAD = b"workflow_signing_key"
SIGNING_KEY_CHANNEL = "rotor_signing_key"  # PostgreSQL: a workspace's keys were rotated (payload: its id)


class SigningKeys(msgspec.Struct, kw_only=True):
    """A workspace's signing keys in plaintext; the previous one signs too until `previous_expires`."""

    current: str
    previous: str | None = None
    previous_expires: int | None = None

    def active(self, now: int) -> list[str]:
        """The keys that sign a call made now (the current one first)."""
        if self.previous is not None and self.previous_expires is not None and now < self.previous_expires:
            return [self.current, self.previous]
        return [self.current]


class WorkflowState:
    """Functions by (workspace, id), signing keys by workspace, pinned paths by (workspace, event)."""

    def __init__(self) -> None:
        self._functions: dict[tuple[str, str], Function] = {}
        self._keys: dict[str, SigningKeys] = {}
        self._pins: dict[tuple[str, str], set[str]] = {}
        self.on_ready: Callable[[], None] = lambda: None  # wakes the run driver (safe from the writer thread)

    def load(self, conn: Conn, vault: Vault) -> None:
        for fn in function_store.all_functions(conn):
            self.put(fn)
        for workspace_id, row in function_store.all_signing_keys(conn).items():
            self._keys[workspace_id] = decrypt_keys(vault, row)
        for workspace_id, event_name, path in run_store.pinned_paths(conn):
            self.add_pin(workspace_id, event_name, path)

    def reload(self, conn: Conn, vault: Vault) -> None:
        """Read functions and signing keys again: another node changed some."""
        self._functions.clear()
        self._keys.clear()
        self.load(conn, vault)

    def put(self, fn: Function) -> None:
        self._functions[(fn.workspace_id, fn.id)] = fn

    def remove(self, fn: Function) -> None:
        self._functions.pop((fn.workspace_id, fn.id), None)

    def function(self, workspace_id: str, function_id: str) -> Function | None:
        return self._functions.get((workspace_id, function_id))

    def signing_keys(self, workspace_id: str) -> SigningKeys | None:
        return self._keys.get(workspace_id)

    async def fetch_signing_keys(self, db: Database, vault: Vault, workspace_id: str) -> SigningKeys | None:
        """The keys as stored now (made or rotated on another node), kept for the next calls."""
        row = await function_store.fetch_signing_key(db, workspace_id)
        if row is None:
            return None
        keys = self._keys[workspace_id] = decrypt_keys(vault, row)
        return keys

    def forget_signing_keys(self, workspace_id: str) -> None:
        """Another node rotated them: the next call reads them again."""
        self._keys.pop(workspace_id, None)

    def set_signing_keys(self, workspace_id: str, keys: SigningKeys) -> None:
        self._keys[workspace_id] = keys

    def add_pin(self, workspace_id: str, event_name: str, path: str) -> None:
        self._pins.setdefault((workspace_id, event_name), set()).add(path)

    def pins(self, workspace_id: str, event_name: str) -> set[str]:
        return self._pins.get((workspace_id, event_name), set())


def decrypt_keys(vault: Vault, row: function_store.SigningKeyRow) -> SigningKeys:
    return SigningKeys(
        current=vault.decrypt_text(row.current, _SIGNING_KEY_AAD),
        previous=None if row.previous is None else vault.decrypt_text(row.previous, _SIGNING_KEY_AAD),
        previous_expires=row.previous_expires,
    )


def encrypt_keys(vault: Vault, keys: SigningKeys) -> function_store.SigningKeyRow:
    return function_store.SigningKeyRow(
        current=vault.encrypt(keys.current.encode(), _SIGNING_KEY_AAD),
        previous=None if keys.previous is None else vault.encrypt(keys.previous.encode(), _SIGNING_KEY_AAD),
        previous_expires=keys.previous_expires,
    )

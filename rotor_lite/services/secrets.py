"""The secrets vault: create, list, rotate, delete; `${{ secrets.NAME }}` resolution for delivery.

Values are AES-256-GCM encrypted under the master key (context `secret:<workspace>:<name>`,
so a ciphertext cannot be swapped between rows). Plaintexts live only in `SecretValues`'
memory cache and in the request being delivered.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterable
from typing import Any

import msgspec

from rotor_lite.clock import iso_from_ms
from rotor_lite.errors import Conflict, SecretNotFound, ValidationError
from rotor_lite.models import Principal
from rotor_lite.services import audit
from rotor_lite.services.core import Core
from rotor_lite.crypto import Vault
from rotor_lite.store import secrets as secret_store
from rotor_lite.store.db import Database
from rotor_lite.store.secrets import SecretRow
from rotor_lite.store.contract import Conn

NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
MAX_NAME, MAX_VALUE, MAX_SECRETS = 128, 64 * 1024, 1000
TEMPLATE = re.compile(r"\$\{\{\s*secrets\.([A-Za-z0-9_]+)\s*\}\}")
MARKER = "${{"
MARKER_BYTES = MARKER.encode()  # a cheap first test on encoded JSON before looking for templates
_ACCESS_EVERY_MS = 60_000
HINT_END = "…"


def context(workspace_id: str, name: str) -> bytes:
    """The AES-GCM associated data binding a ciphertext to its row."""
    return f"secret:{workspace_id}:{name}".encode()


def hint(value: str) -> str:
    """At most the first 5 characters, never more than a third of the value, then an ellipsis."""
    return value[: min(5, len(value) // 3)] + HINT_END


def secret_out(row: SecretRow) -> dict[str, Any]:
    """The API shape: name, hint and times, never the value."""
    return {
        "name": row.name, "value_hint": row.hint, "created_at": iso_from_ms(row.created_at),
        "updated_at": iso_from_ms(row.updated_at),
    }


def _check_name(name: str) -> str:
    if not NAME.match(name) or len(name) > MAX_NAME:
        raise ValidationError(
            f"secret names are UPPER_SNAKE_CASE: ^[A-Z][A-Z0-9_]*$, at most {MAX_NAME} characters", field="name"
        )
    return name


def _check_value(value: str) -> str:
    if not value:
        raise ValidationError("value must not be empty", field="value")
    if len(value.encode()) > MAX_VALUE:
        raise ValidationError(f"value must be at most {MAX_VALUE} bytes", field="value")
    return value


def _actor_event(principal: Principal, event_type: str, name: str, now: int) -> Any:
    return audit.audit_event(
        principal.workspace_id, event_type, actor=principal.key_id, now=now, resource_type="secret", resource_id=name
    )


async def create_secret(core: Core, principal: Principal, name: str, value: str) -> SecretRow:
    """Store a new secret; 409 when the name is taken."""
    _check_name(name)
    _check_value(value)
    now = core.clock.now_ms()
    row = SecretRow(
        workspace_id=principal.workspace_id, name=name, value=core.vault.encrypt(value, context(principal.workspace_id, name)),
        hint=hint(value), created_at=now, updated_at=now,
    )

    event = _actor_event(principal, "secret.created", name, now)  # here: the request's context is on this thread

    def insert(conn: Conn) -> None:
        if secret_store.get(conn, row.workspace_id, name) is not None:
            raise Conflict(f"secret '{name}' already exists", {"name": name})
        if secret_store.count(conn, row.workspace_id) >= MAX_SECRETS:
            raise ValidationError(f"a workspace holds at most {MAX_SECRETS} secrets", field="name")
        secret_store.insert(conn, row)
        audit.record(conn, event)

    await core.db.write(insert)
    return row


async def list_secrets(core: Core, principal: Principal) -> list[SecretRow]:
    """Names and hints of the workspace's secrets, by name."""
    return await secret_store.list_all(core.db, principal.workspace_id)


async def rotate_secret(core: Core, principal: Principal, name: str, value: str) -> SecretRow:
    """Replace a secret's value; the next dispatch uses the new one."""
    _check_value(value)
    now = core.clock.now_ms()
    blob = core.vault.encrypt(value, context(principal.workspace_id, name))
    event = _actor_event(principal, "secret.rotated", name, now)

    def update(conn: Conn) -> SecretRow:
        if not secret_store.update_value(conn, principal.workspace_id, name, blob, hint(value), now):
            raise SecretNotFound(name)
        audit.record(conn, event)
        found = secret_store.get(conn, principal.workspace_id, name)
        assert found is not None
        return found

    row = await core.db.write(update)
    _invalidate(core, principal.workspace_id, name)
    return row


async def delete_secret(core: Core, principal: Principal, name: str) -> None:
    """Delete a secret; jobs that still reference it fail their next attempt with `unknown secret NAME`."""
    event = _actor_event(principal, "secret.deleted", name, core.clock.now_ms())

    def delete(conn: Conn) -> None:
        if not secret_store.delete(conn, principal.workspace_id, name):
            raise SecretNotFound(name)
        audit.record(conn, event)

    await core.db.write(delete)
    _invalidate(core, principal.workspace_id, name)


async def require_known(core: Core, workspace_id: str, texts: Iterable[tuple[str, Any]]) -> None:
    """Refuse (422) a template naming a secret the workspace lacks, where it is written rather than at dispatch.

    `texts` are (field, string or decoded JSON) pairs; the error names the secret and the first field naming it.
    """
    referenced: dict[str, str] = {}
    for field, value in texts:
        for name in sorted(payload_names(value)):
            referenced.setdefault(name, field)
    if not referenced:
        return
    found = await secret_store.names_among(core.db, workspace_id, list(referenced))
    for name, field in referenced.items():
        if name not in found:
            raise ValidationError(f"unknown secret {name}", field=field, secret=name)


def _invalidate(core: Core, workspace_id: str, name: str) -> None:
    source = core.secret_values
    if isinstance(source, SecretValues):
        source.invalidate(workspace_id, name)


# Resolution at dispatch --------------------------------------------------------------------


class UnknownSecret(Exception):
    """A template names a secret the workspace does not have."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown secret {name}")
        self.name = name


class SecretValues:
    """Decrypted values cached in memory; rotate and delete invalidate their entry.

    `secret.accessed` is audited at most once per secret per minute.
    """

    def __init__(self, db: Database, vault: Vault, clock: Any) -> None:
        self._db, self._vault, self._clock = db, vault, clock
        self._cache: dict[tuple[str, str], str] = {}
        self._generation = 0
        self._last_access: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def invalidate(self, workspace_id: str, name: str) -> None:
        with self._lock:
            self._generation += 1
            self._cache.pop((workspace_id, name), None)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._cache.clear()

    async def resolve(self, workspace_id: str, names: set[str], context_: dict[str, str]) -> dict[str, str]:
        """The plaintext of every known secret among `names`."""
        found = {n: v for n in names if (v := self._cache.get((workspace_id, n))) is not None}
        missing = [n for n in names if n not in found]
        if missing:
            found.update(await self._load(workspace_id, missing))
        self._note_access(workspace_id, found, context_)
        return found

    async def _load(self, workspace_id: str, names: list[str]) -> dict[str, str]:
        generation = self._generation
        rows = await secret_store.fetch(self._db, workspace_id, names)
        values = {r.name: self._vault.decrypt_text(r.value, context(workspace_id, r.name)) for r in rows}
        with self._lock:
            if generation == self._generation:  # no rotation raced the read
                self._cache.update({(workspace_id, n): v for n, v in values.items()})
        return values

    def _note_access(self, workspace_id: str, names: Iterable[str], context_: dict[str, str]) -> None:
        now = self._clock.now_ms()
        due = [n for n in names if now - self._last_access.get((workspace_id, n), -_ACCESS_EVERY_MS) >= _ACCESS_EVERY_MS]
        if not due:
            return
        for name in due:
            self._last_access[(workspace_id, name)] = now
        events = [
            audit.audit_event(workspace_id, "secret.accessed", actor=audit.SYSTEM, now=now, resource_type="secret",
                              resource_id=name, metadata=context_)
            for name in due
        ]
        task = asyncio.get_running_loop().create_task(self._db.write(lambda conn: audit.record(conn, *events)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def template_names(text: str) -> set[str]:
    """The secret names `text` references."""
    return set(TEMPLATE.findall(text)) if MARKER in text else set()


def payload_names(payload: Any) -> set[str]:
    """The secret names referenced by string values anywhere in a decoded JSON payload."""
    if isinstance(payload, str):
        return template_names(payload)
    if isinstance(payload, dict):
        return set().union(*(payload_names(v) for v in payload.values())) if payload else set()
    if isinstance(payload, list):
        return set().union(*(payload_names(v) for v in payload)) if payload else set()
    return set()


def substitute(text: str, values: dict[str, str]) -> str:
    """`text` with each template replaced by its value; raises UnknownSecret for a missing one."""
    if MARKER not in text:
        return text

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise UnknownSecret(name)
        return values[name]

    return TEMPLATE.sub(value_of, text)


def substitute_payload(payload: Any, values: dict[str, str]) -> Any:
    """The decoded payload with templates replaced in every string value."""
    if isinstance(payload, str):
        return substitute(payload, values)
    if isinstance(payload, dict):
        return {k: substitute_payload(v, values) for k, v in payload.items()}
    if isinstance(payload, list):
        return [substitute_payload(v, values) for v in payload]
    return payload


def encode_payload(payload: Any) -> bytes:
    return msgspec.json.encode(payload)

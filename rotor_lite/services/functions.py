"""Function operations: register (create or update), read, list, delete; the workspace's signing key."""

from __future__ import annotations

import re
import secrets

from rotor_lite.errors import NotFound, ValidationError
from rotor_lite.models import Function, Principal
from rotor_lite.netguard import check_callback_url
from rotor_lite.schemas import EVENT_NAME, QUEUE_NAME, FunctionCreate
from rotor_lite.services.core import Core
from rotor_lite.services.function_schedules import sync_function_schedule
from rotor_lite.services.paging import decode_cursor, encode_cursor
from rotor_lite.services.schedules import check_cron_and_zone
from rotor_lite.services.workflow_state import SIGNING_KEY_CHANNEL, SigningKeys, decrypt_keys, encrypt_keys
from rotor_lite.store import functions as store
from rotor_lite.store.contract import Conn, is_postgres, notify

__all__ = [
    "FunctionNotFound", "HOOKS", "MAX_RETRIES", "delete_function", "ensure_signing_keys", "get_function",
    "list_functions", "register_function", "rotate_signing_key", "signing_keys",
]

HOOKS = ("on_success", "on_failure", "on_cancel")
MAX_RETRIES = 20
_ID = re.compile(QUEUE_NAME)
_EVENT = re.compile(EVENT_NAME)
_PREVIOUS_KEY_TTL_MS = 24 * 3600 * 1000


class FunctionNotFound(NotFound):
    def __init__(self, function_id: str) -> None:
        super().__init__(f"function '{function_id}' not found", {"functionId": function_id})


async def register_function(core: Core, principal: Principal, spec: FunctionCreate) -> tuple[Function, bool]:
    """Create the function, or update the one with its id; returns it and whether it is new."""
    fn = _validated(core, principal.workspace_id, spec)
    def write(conn: Conn) -> tuple[Function, bool]:
        existing = store.get(conn, fn.workspace_id, fn.id)
        if existing is not None:
            fn.created_at = existing.created_at
        fn.schedule_id = sync_function_schedule(core, conn, fn, existing)
        ensure_signing_keys(core, conn, fn.workspace_id)
        return store.upsert(conn, fn), existing is None

    stored, created = await core.db.write(write)
    core.workflows.put(stored)
    core.on_schedules_changed()
    return stored, created


def _validated(core: Core, workspace_id: str, spec: FunctionCreate) -> Function:
    if not _ID.match(spec.id):
        raise ValidationError(f"id must match {QUEUE_NAME}", field="id")
    serve_url = check_callback_url(spec.serve_url, allow_private=core.settings.callbacks.allow_private_networks, field="serve_url")
    if not 0 <= spec.retries <= MAX_RETRIES:
        raise ValidationError(f"retries must be between 0 and {MAX_RETRIES}", field="retries")
    if spec.concurrency is not None and spec.concurrency < 1:
        raise ValidationError("concurrency must be at least 1", field="concurrency")
    unknown = [hook for hook in spec.hooks or [] if hook not in HOOKS]
    if unknown:
        raise ValidationError(f"unknown hook {unknown[0]!r}: hooks are {', '.join(HOOKS)}", field="hooks")
    now = core.clock.now_ms()
    fn = Function(
        rowid=0, workspace_id=workspace_id, id=spec.id, serve_url=serve_url, trigger_type=spec.trigger_type,
        trigger_event=None, cron=None, timezone=None, retries=spec.retries, concurrency=spec.concurrency,
        hooks=sorted(set(spec.hooks or [])), schedule_id=None, created_at=now, updated_at=now,
    )
    if spec.trigger_type == "event":
        if not spec.trigger_event or not _EVENT.match(spec.trigger_event):
            raise ValidationError(f"trigger_event is required and must match {EVENT_NAME}", field="trigger_event")
        fn.trigger_event = spec.trigger_event
    else:
        fn.cron, fn.timezone = check_cron_and_zone(spec.cron, spec.timezone)
    return fn


async def get_function(core: Core, principal: Principal, function_id: str) -> Function:
    fn = core.workflows.function(principal.workspace_id, function_id)
    if fn is None:
        raise FunctionNotFound(function_id)
    return fn


async def list_functions(core: Core, principal: Principal, *, limit: int, cursor: str | None) -> tuple[list[Function], str | None]:
    found = await store.list_functions(core.db, principal.workspace_id, decode_cursor(cursor), limit + 1)
    page = found[:limit]
    return page, encode_cursor(page[-1].rowid) if len(found) > limit else None


async def delete_function(core: Core, principal: Principal, function_id: str) -> None:
    """Delete the function (and its cron schedule); its runs are kept."""
    fn = await get_function(core, principal, function_id)
    def write(conn: Conn) -> None:
        sync_function_schedule(core, conn, None, fn)
        store.delete(conn, fn.rowid)

    await core.db.write(write)
    core.workflows.remove(fn)
    core.on_schedules_changed()


# Signing keys ---------------------------------------------------------------------------


def _new_signing_key() -> str:
    return f"signkey_{secrets.token_hex(32)}"


def ensure_signing_keys(core: Core, conn: Conn, workspace_id: str, *, for_update: bool = False) -> SigningKeys:
    """The workspace's signing keys, made on first need (inside the caller's transaction).

    On PostgreSQL the stored row is the truth (another node may have made or rotated the keys), so it
    is read every time; a key made meanwhile by another node is kept, never replaced.
    """
    keys = core.workflows.signing_keys(workspace_id)
    if keys is not None and not is_postgres(conn):
        return keys
    row = store.signing_key_of(conn, workspace_id, for_update=for_update)
    if row is None:
        store.add_signing_key(conn, workspace_id, encrypt_keys(core.vault, SigningKeys(current=_new_signing_key())), core.clock.now_ms())
        row = store.signing_key_of(conn, workspace_id, for_update=for_update)
        assert row is not None, "a signing key was just added or found"
    keys = decrypt_keys(core.vault, row)
    core.workflows.set_signing_keys(workspace_id, keys)
    return keys


async def signing_keys(core: Core, principal: Principal) -> SigningKeys:
    return await core.db.write(lambda conn: ensure_signing_keys(core, conn, principal.workspace_id))


async def rotate_signing_key(core: Core, principal: Principal) -> SigningKeys:
    """A new current key; the old one keeps signing (both signatures are sent) for 24 hours."""
    now = core.clock.now_ms()

    def write(conn: Conn) -> SigningKeys:
        old = ensure_signing_keys(core, conn, principal.workspace_id, for_update=True)
        keys = SigningKeys(current=_new_signing_key(), previous=old.current, previous_expires=now + _PREVIOUS_KEY_TTL_MS)
        store.set_signing_key(conn, principal.workspace_id, encrypt_keys(core.vault, keys), now)
        notify(conn, SIGNING_KEY_CHANNEL, principal.workspace_id)
        core.workflows.set_signing_keys(principal.workspace_id, keys)
        return keys

    return await core.db.write(write)

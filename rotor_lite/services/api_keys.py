"""API keys over HTTP: create, list, get, rotate with a grace period, revoke.

Nobody mints a key with more rights than their own: not a higher role, not a workspace their key
does not reach, not a later expiry. Keys are listed in the workspace they belong to.
"""

from __future__ import annotations


import msgspec

from rotor_lite.clock import iso, iso_from_ms
from rotor_lite.errors import ApiKeyNotFound, Conflict, Forbidden, ValidationError, WorkspaceNotFound
from rotor_lite.models import KeyType, Principal, Role, key_type_of
from rotor_lite.schemas import ApiKeyCreate, ApiKeyOut
from rotor_lite.services.core import Core
from rotor_lite.services.keyring import DAY_MS, CreatedKey, default_expiry, mint_key
from rotor_lite.store import workspaces as ws_store
from rotor_lite.store.workspaces import ApiKeyRow
from rotor_lite.store.contract import Conn

MAX_EXPIRY_DAYS = 365
MAX_GRACE_SECONDS = 30 * 86_400
_MAX_LABEL = 128


async def create_key(core: Core, principal: Principal, spec: ApiKeyCreate) -> ApiKeyOut:
    """A new key of the caller's workspace, shown once."""
    role = Role(spec.role)
    _check_label(spec.label)
    if not principal.role.covers(role):
        raise Forbidden(f"a {principal.role.value} key may not mint a {role.value} key", {"role": role.value})
    key_type = KeyType(spec.type or ("queue" if spec.queue is not None else "workspace"))
    queue = _queue_of(core, principal, key_type, spec.queue)
    team = await _team_workspaces(core, principal, key_type, spec.workspaces)
    now = core.clock.now_ms()
    expires_at = _expiry(now, principal, spec.expires_in_days)

    def mint(conn: Conn) -> tuple[CreatedKey, ApiKeyRow]:
        workspace = ws_store.workspace_by_name(conn, principal.workspace_id)
        if workspace is None:
            raise WorkspaceNotFound(principal.workspace_id)
        created = mint_key(conn, workspace=workspace, label=spec.label, role=role, now=now, queue=queue,
                           team_workspaces=team, expires_at=expires_at)
        return created, _stored(conn, created.id)

    created, row = await core.db.write(mint)
    return _out(core, row, team, key=created.key)


async def list_keys(core: Core, principal: Principal) -> list[ApiKeyOut]:
    """The keys of the caller's workspace, oldest first, without key material."""
    rows = await ws_store.api_keys_of(core.db, principal.workspace_id)
    return [_out(core, row, await _reach(core, row)) for row in rows]


async def get_key(core: Core, principal: Principal, key_id: str) -> ApiKeyOut:
    row = await _own_key(core, principal, key_id)
    return _out(core, row, await _reach(core, row))


async def rotate_key(core: Core, principal: Principal, key_id: str, grace_seconds: float) -> ApiKeyOut:
    """A new key with the same label, role, scope and expiry; the old one works `grace_seconds` more."""
    if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
        raise ValidationError(f"graceSeconds must be between 0 and {MAX_GRACE_SECONDS}", field="graceSeconds")
    now = core.clock.now_ms()

    def rotate(conn: Conn) -> tuple[CreatedKey, ApiKeyRow, tuple[str, ...]]:
        old = _owned(ws_store.api_key_by_id(conn, key_id), principal, key_id)
        if old.revoked_at is not None or (old.expires_at is not None and old.expires_at <= now):
            raise Conflict(f"API key '{key_id}' is revoked, rotated or expired", {"keyId": key_id})
        team = tuple(ws_store.team_workspace_ids(conn, key_id))
        _check_within(principal, Role(old.role), team, old.expires_at)
        workspace = ws_store.workspace_by_name(conn, old.workspace_id)
        assert workspace is not None  # a key's workspace outlives it (ON DELETE CASCADE)
        created = mint_key(conn, workspace=workspace, label=old.label, role=Role(old.role), now=now,
                           queue=old.queue_name, team_workspaces=team, expires_at=old.expires_at)
        ws_store.revoke_api_key(conn, key_id, now + round(grace_seconds * 1000))
        return created, _stored(conn, created.id), team

    created, row, team = await core.db.write(rotate)
    core.keys.forget(key_id)  # its cached entry does not know its end yet
    return _out(core, row, team, key=created.key)


async def revoke_key(core: Core, principal: Principal, key_id: str) -> None:
    """Revoke a key at once: its next request is a 401 saying so. Revoking it again changes nothing."""
    now = core.clock.now_ms()

    def revoke(conn: Conn) -> None:
        _owned(ws_store.api_key_by_id(conn, key_id), principal, key_id)
        ws_store.revoke_api_key(conn, key_id, now)

    await core.db.write(revoke)
    core.keys.forget(key_id)


async def created_key_out(core: Core, created: CreatedKey) -> ApiKeyOut:
    """A key just minted elsewhere (a new workspace's first), with its plaintext."""
    row = await ws_store.read_api_key(core.db, created.id)
    assert row is not None
    return _out(core, row, (), key=created.key)


def _check_label(label: str) -> None:
    if not label.strip() or len(label) > _MAX_LABEL or not label.isprintable():
        raise ValidationError(f"label must be 1 to {_MAX_LABEL} printable characters", field="label")


def _queue_of(core: Core, principal: Principal, key_type: KeyType, queue: str | None) -> str | None:
    if key_type is not KeyType.QUEUE:
        if queue is not None:
            raise ValidationError("queue is only for a key of type 'queue'", field="queue")
        return None
    if queue is None:
        raise ValidationError("a key of type 'queue' needs a queue", field="queue")
    return core.queue_for(principal, queue).name  # another workspace's queue, or none: 404


async def _team_workspaces(
    core: Core, principal: Principal, key_type: KeyType, named: list[str] | None
) -> tuple[str, ...]:
    """A team key's workspaces: the ones named (each one the caller reaches, by id or name) and the
    caller's current one, which the key belongs to."""
    if key_type is not KeyType.TEAM:
        if named is not None:
            raise ValidationError("workspaces are only for a key of type 'team'", field="workspaces")
        return ()
    reachable = {name: row.id for row in await ws_store.workspaces_by_id(core.db, principal.reachable)
                 for name in (row.id, row.name)}
    chosen = {principal.workspace_id}
    for workspace in named or ():
        if workspace not in reachable:
            raise WorkspaceNotFound(workspace)
        chosen.add(reachable[workspace])
    return tuple(sorted(chosen))


def _expiry(now: int, principal: Principal, days: int | None | msgspec.UnsetType) -> int | None:
    """When the new key expires: 90 days by default, 1 to 365 days, or never (None); never after its creator."""
    if days is msgspec.UNSET:
        return default_expiry(now, principal)
    if days is not None and not 1 <= days <= MAX_EXPIRY_DAYS:
        raise ValidationError(f"expiresInDays must be between 1 and {MAX_EXPIRY_DAYS}, or null", field="expiresInDays")
    expires_at = None if days is None else now + days * DAY_MS
    _check_expiry(principal, expires_at)
    return expires_at


def _check_within(principal: Principal, role: Role, team: tuple[str, ...], expires_at: int | None) -> None:
    """Refuse a key (a rotation's copy) with rights the caller's key lacks."""
    if not principal.role.covers(role):
        raise Forbidden(f"a {principal.role.value} key may not mint a {role.value} key", {"role": role.value})
    if not set(team) <= set(principal.reachable):
        raise Forbidden("a key may not mint a key for workspaces it does not reach")
    _check_expiry(principal, expires_at)


def _check_expiry(principal: Principal, expires_at: int | None) -> None:
    if principal.expires_at is not None and (expires_at is None or expires_at > principal.expires_at):
        raise Forbidden("a key may not mint a key that expires after it does",
                        {"expiresAt": iso_from_ms(principal.expires_at)})


async def _own_key(core: Core, principal: Principal, key_id: str) -> ApiKeyRow:
    return _owned(await ws_store.read_api_key(core.db, key_id), principal, key_id)


def _owned(row: ApiKeyRow | None, principal: Principal, key_id: str) -> ApiKeyRow:
    """The key when it belongs to the caller's workspace; another workspace's is not found."""
    if row is None or row.workspace_id != principal.workspace_id:
        raise ApiKeyNotFound(key_id)
    return row


def _stored(conn: Conn, key_id: str) -> ApiKeyRow:
    row = ws_store.api_key_by_id(conn, key_id)
    assert row is not None
    return row


async def _reach(core: Core, row: ApiKeyRow) -> tuple[str, ...]:
    if not row.team:
        return (row.workspace_id,)
    return tuple(ws_id for ws_id, _ in await ws_store.team_workspaces(core.db, row.id))


def _out(core: Core, row: ApiKeyRow, reach: tuple[str, ...], key: str | None = None) -> ApiKeyOut:
    seen = core.keys.last_used(row.id)
    last_used = max(filter(None, (row.last_used_at, seen)), default=None)
    out = ApiKeyOut(
        id=row.id, prefix=row.key_prefix, label=row.label, role=row.role, type=key_type_of(row.team, row.queue_name).value, queue=row.queue_name,
        workspaces=list(reach or (row.workspace_id,)), createdAt=iso(row.created_at),
        expiresAt=iso_from_ms(row.expires_at), lastUsedAt=iso_from_ms(last_used), revokedAt=iso_from_ms(row.revoked_at),
    )
    if key is not None:
        out.key = key
    return out

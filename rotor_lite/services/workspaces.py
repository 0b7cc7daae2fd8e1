"""Workspaces: first-start bootstrap, creation (offline or by a team key), the ones a key reaches, plans."""

from __future__ import annotations

import msgspec

from rotor_lite.clock import iso
from rotor_lite.errors import Conflict, Forbidden, QueueNotFound, ValidationError, WorkspaceNotFound
from rotor_lite.ids import new_id
from rotor_lite.models import KeyType, Principal, Role
from rotor_lite.schemas import PlanLimitsOut, WorkspaceOut
from rotor_lite.services import audit
from rotor_lite.services.api_keys import created_key_out
from rotor_lite.services.core import Core
from rotor_lite.services.keyring import CreatedKey, default_expiry, mint_key
from rotor_lite.services.plans import DEFAULT_PLAN, PLANS
from rotor_lite.store import queues as queue_store
from rotor_lite.store import workspaces as ws_store
from rotor_lite.store.workspaces import WorkspaceRow
from rotor_lite.store.contract import Conn

DEFAULT_WORKSPACE = "default"


class CreatedWorkspace(msgspec.Struct, kw_only=True):
    """A new workspace and its first admin key (whose plaintext exists only here)."""

    workspace: WorkspaceRow
    key: CreatedKey


def bootstrap(conn: Conn, bootstrap_key: str, now: int) -> CreatedKey | None:
    """On first start create the `default` workspace and its admin key (the configured one, or a new one)."""
    if ws_store.count_workspaces(conn):
        return None
    return create_workspace(conn, DEFAULT_WORKSPACE, now, key=bootstrap_key or None).key


def create_workspace(
    conn: Conn, name: str, now: int, *, plan: str = DEFAULT_PLAN, key: str | None = None,
    key_expires_at: int | None = None,
) -> CreatedWorkspace:
    """A new workspace on `plan` with its first admin key."""
    if not name or len(name) > 128 or not name.isprintable():
        raise ValidationError("workspace name must be 1 to 128 printable characters", field="name")
    if plan not in PLANS:
        raise ValidationError(f"plan must be one of {', '.join(PLANS)}", field="plan")
    if ws_store.workspace_by_name(conn, name) is not None:
        raise Conflict(f"workspace '{name}' already exists", {"name": name})
    row = WorkspaceRow(id=new_id("ws", now), name=name, plan=plan, created_at=now)
    ws_store.insert_workspace(conn, row.id, name, now, plan)
    created = mint_key(conn, workspace=(row.id, name), label="initial admin key", role=Role.ADMIN, now=now, key=key,
                       expires_at=key_expires_at)
    return CreatedWorkspace(workspace=row, key=created)


def create_workspace_offline(conn: Conn, name: str, now: int, plan: str) -> CreatedWorkspace:
    """`rotor-lite workspaces create`: a workspace and its first admin key (which never expires), audited."""
    created = create_workspace(conn, name, now, plan=plan)
    _audit_offline(conn, created.workspace.id, "workspace.created", "workspace", created.workspace.id, now, plan=plan)
    _audit_offline(conn, created.workspace.id, "api_key.created", "api_key", created.key.id, now, role=created.key.role)
    return created


def create_key(
    conn: Conn, workspace: str, label: str, role: Role, now: int, queue: str | None = None,
    expires_at: int | None = None,
) -> CreatedKey:
    """`rotor-lite keys create`: a new API key for an existing workspace (by name or id), audited; with `queue`,
    an `rt_q_` key for that queue only."""
    found = ws_store.workspace_by_name(conn, workspace)
    if found is None:
        raise WorkspaceNotFound(workspace)
    if queue is not None and not any(
        row.queue.workspace_id == found[0] and row.queue.name == queue for row in queue_store.all_queues(conn)
    ):
        raise QueueNotFound(queue)
    created = mint_key(conn, workspace=found, label=label, role=role, now=now, queue=queue, expires_at=expires_at)
    _audit_offline(conn, found[0], "api_key.created", "api_key", created.id, now, role=role.value, queue=queue)
    return created


def _audit_offline(
    conn: Conn, workspace_id: str, event_type: str, resource_type: str, resource_id: str, now: int,
    **metadata: str | None,
) -> None:
    audit.record(conn, audit.audit_event(workspace_id, event_type, actor=audit.SYSTEM, now=now, ip=None,
                                         resource_type=resource_type, resource_id=resource_id,
                                         metadata={"via": "offline command", **metadata}))


async def reachable_workspaces(core: Core, principal: Principal) -> list[WorkspaceRow]:
    """The workspaces the caller's key may act in, by name."""
    return await ws_store.workspaces_by_id(core.db, principal.reachable)


async def get_workspace(core: Core, principal: Principal, workspace: str) -> WorkspaceRow:
    """A workspace the caller's key reaches, by id or name; any other is not found."""
    for row in await reachable_workspaces(core, principal):
        if workspace in (row.id, row.name):
            return row
    raise WorkspaceNotFound(workspace)


async def create_workspace_for(core: Core, principal: Principal, name: str, plan: str | None) -> WorkspaceOut:
    """A new workspace made by a team key, which reaches it from now on, with its first admin key (shown
    once); that key expires as a new API key does by default, and never after the team key."""
    if principal.key_type is not KeyType.TEAM:
        raise Forbidden("only a team key (rt_team_) may create workspaces", {"keyType": principal.key_type.value})
    now = core.clock.now_ms()
    expires_at = default_expiry(now, principal)

    def create(conn: Conn) -> CreatedWorkspace:
        created = create_workspace(conn, name, now, plan=plan or DEFAULT_PLAN, key_expires_at=expires_at)
        ws_store.add_team_workspace(conn, principal.key_id, created.workspace.id)
        return created

    created = await core.db.write(create)
    core.plans.put(created.workspace.id, created.workspace.plan)
    core.keys.forget(principal.key_id)  # its next request sees the new workspace
    out = workspace_out(core, created.workspace)
    out.apiKey = await created_key_out(core, created.key)
    return out


def retention_days(core: Core, workspace_id: str) -> int:
    """How many days a workspace keeps finished jobs, runs and their logs: its plan's `retention_days`."""
    return core.plans.known(workspace_id).retention_days


def workspace_out(core: Core, row: WorkspaceRow) -> WorkspaceOut:
    """The API shape of a workspace; an unlimited figure is null."""
    limits = core.plans.of_plan(row.plan)
    return WorkspaceOut(
        id=row.id, name=row.name, plan=row.plan, createdAt=iso(row.created_at),
        limits=PlanLimitsOut(
            jobsPerMonth=limits.jobs_per_month or None, requestsPerMinute=limits.requests_per_minute or None,
            retentionDays=limits.retention_days,
        ),
    )

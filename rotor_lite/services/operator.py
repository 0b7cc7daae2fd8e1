"""The operator: whoever holds the server's `[mcp] admin_token` acts as an admin of any workspace it names.

Its calls go through the same service functions as a key's, with an admin `Principal` of that
workspace whose key id is `operator` (so the audit log tells them apart).
"""

from __future__ import annotations

import hmac

from rotor_lite.errors import KeyRefused, WorkspaceNotFound
from rotor_lite.models import Principal, Role
from rotor_lite.services.core import Core
from rotor_lite.store import workspaces as store

__all__ = ["OPERATOR", "Workspace", "check_operator_token", "list_workspaces", "operator_principal"]

OPERATOR = "operator"
Workspace = tuple[str, str, str, int]  # id, name, plan, created_at


def check_operator_token(core: Core, authorization: str | None) -> None:
    """Refuse (401) anything but `Bearer <[mcp] admin_token>`; with no token configured, refuse everything."""
    token = core.settings.mcp.admin_token
    given = (authorization or "").encode()
    if not token or not hmac.compare_digest(given, f"Bearer {token}".encode()):
        raise KeyRefused("the admin routes need the operator token ([mcp] admin_token)", "invalid")


async def operator_principal(core: Core, workspace: str) -> Principal:
    """The operator as an admin of `workspace` (its id or name)."""
    found = await store.find_workspace(core.db, workspace)
    if found is None:
        raise WorkspaceNotFound(workspace)
    return Principal(key_id=OPERATOR, workspace_id=found[0], role=Role.ADMIN)


async def list_workspaces(core: Core) -> list[Workspace]:
    return await store.all_workspaces(core.db)

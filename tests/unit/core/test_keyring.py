"""API key authentication: the cache, revocation and expiry at the moment of use, and no write per request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from rotor_lite.errors import KeyRefused, WorkspaceNotFound
from rotor_lite.models import KeyType, Role
from rotor_lite.services import workspaces
from rotor_lite.services.keyring import Authenticator, key_prefix, mint_key
from rotor_lite.store import workspaces as ws_store
from rotor_lite.store.db import Database

NOW = 1_800_000_000_000


@pytest.fixture
async def db(make_database: Callable[..., AbstractAsyncContextManager[Any]]) -> AsyncIterator[Database]:
    async with make_database() as opened:
        await opened.write(lambda conn: workspaces.bootstrap(conn, "rt_ws_unit_bootstrap_key", NOW))
        yield opened


class CountingDatabase:
    """A Database whose writes are counted."""

    def __init__(self, db: Database) -> None:
        self._db, self.writes = db, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)

    async def write(self, op: object) -> object:
        self.writes += 1
        return await self._db.write(op)  # type: ignore[arg-type]


async def test_authenticating_writes_nothing_and_the_flush_writes_each_last_use_once(db: Database) -> None:
    counted = CountingDatabase(db)
    keys = Authenticator(counted)  # type: ignore[arg-type]
    for n in range(100):
        principal = await keys.authenticate("Bearer rt_ws_unit_bootstrap_key", NOW + n)
    assert counted.writes == 0 and principal.role is Role.ADMIN and principal.key_type is KeyType.WORKSPACE
    assert keys.last_used(principal.key_id) == NOW + 99
    await keys.flush()
    await keys.flush()  # nothing new: no write
    assert counted.writes == 1
    row = await ws_store.read_api_key(db, principal.key_id)
    assert row is not None and row.last_used_at == NOW + 99


async def test_revocation_and_expiry_are_checked_at_each_use(db: Database) -> None:
    ws = await db.fetchone("SELECT id, name FROM workspace")
    made = await db.write(lambda conn: mint_key(conn, workspace=(ws[0], ws[1]), label="t", role=Role.VIEWER, now=NOW,
                                                expires_at=NOW + 1_000))
    keys = Authenticator(db)
    bearer = f"Bearer {made.key}"
    assert (await keys.authenticate(bearer, NOW)).role is Role.VIEWER
    await db.write(lambda conn: ws_store.revoke_api_key(conn, made.id, NOW + 500))  # a rotation's grace
    keys.forget(made.id)
    assert (await keys.authenticate(bearer, NOW + 499)).key_id == made.id
    with pytest.raises(KeyRefused) as revoked:
        await keys.authenticate(bearer, NOW + 500)
    assert (revoked.value.reason, revoked.value.message) == ("revoked", "API key has been revoked")
    await db.write(lambda conn: conn.execute("UPDATE api_key SET revoked_at = NULL WHERE id = ?", (made.id,)))
    keys.forget(made.id)
    with pytest.raises(KeyRefused) as expired:
        await keys.authenticate(bearer, NOW + 1_000)
    assert (expired.value.reason, expired.value.message) == ("expired", "API key has expired")
    assert expired.value.key_prefix == key_prefix(made.key) and made.key[len(key_prefix(made.key)):] not in str(expired.value)


async def test_a_team_key_acts_in_a_workspace_it_reaches_by_id_or_name(db: Database) -> None:
    home = await db.fetchone("SELECT id, name FROM workspace")
    other = await db.write(lambda conn: workspaces.create_workspace(conn, "other", NOW).workspace)
    outside = await db.write(lambda conn: workspaces.create_workspace(conn, "outside", NOW).workspace)
    team = await db.write(lambda conn: mint_key(conn, workspace=(home[0], home[1]), label="t", role=Role.ADMIN, now=NOW,
                                                team_workspaces=tuple(sorted((home[0], other.id)))))
    keys = Authenticator(db)
    bearer = f"Bearer {team.key}"
    assert team.key.startswith("rt_team_") and key_prefix(team.key) == team.key[:12]
    assert (await keys.authenticate(bearer, NOW, "other")).workspace_id == other.id
    assert (await keys.authenticate(bearer, NOW, other.id)).workspace_id == other.id
    unnamed = await keys.authenticate(bearer, NOW)
    assert unnamed.workspace_id == home[0] and set(unnamed.reachable) == {home[0], other.id}
    with pytest.raises(WorkspaceNotFound):
        await keys.authenticate(bearer, NOW, outside.name)


async def test_retention_days_follow_each_workspaces_plan(
    tmp_path: Path, make_database: Callable[..., AbstractAsyncContextManager[Any]]
) -> None:
    from rotor_lite.config import load_settings
    from rotor_lite.crypto import Vault
    from rotor_lite.services.core import Core
    from tests.notify_helpers import FakeClock

    settings = load_settings(env={"ROTOR_PLANS_PRO_RETENTION_DAYS": "45"}, overrides={("storage", "data_dir"): str(tmp_path)})
    async with make_database() as db:
        made = await db.write(lambda conn: [workspaces.create_workspace(conn, name, NOW, plan=plan).workspace.id
                                            for name, plan in (("a", "pro"), ("b", "team"), ("c", "self-hosted"))])
        core = Core(settings, FakeClock(), db, Vault(bytes(32)))
        await db.write(core.plans.load)
        assert [workspaces.retention_days(core, ws) for ws in made] == [45, 90, 7]

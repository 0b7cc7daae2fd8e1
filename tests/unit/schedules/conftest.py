"""A real SQLite file and a Core driven by a fake clock, for the scheduling logic."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from rotor_lite.config import load_settings
from rotor_lite.crypto import Vault
from rotor_lite.engine.scheduler import Scheduler
from rotor_lite.models import Principal, Role
from rotor_lite.schemas import QueueCreate
from rotor_lite.services import queues, workspaces
from rotor_lite.services.core import Core


class FakeClock:
    """Time stands still until a test moves it."""

    def __init__(self, start: str) -> None:
        self.now = _ms(start)

    def now_ms(self) -> int:
        return self.now

    def set(self, moment: str) -> None:
        self.now = _ms(moment)

    def advance(self, ms: int) -> None:
        self.now += ms


def _ms(moment: str) -> int:
    return int(datetime.fromisoformat(moment).timestamp() * 1000)


@dataclass
class Env:
    core: Core
    scheduler: Scheduler
    principal: Principal
    clock: FakeClock


Opener = Callable[..., AbstractAsyncContextManager[Env]]


@pytest.fixture
def open_env(tmp_path: Path, make_database: Callable[..., AbstractAsyncContextManager[Any]]) -> Opener:
    """Open the same data directory (and database, of the run's backend) as often as a test likes (a restart
    is closing and opening again)."""
    key = os.urandom(32)

    @asynccontextmanager
    async def open_(clock: FakeClock, grace: str = "1h", quota: int = 0) -> AsyncIterator[Env]:
        settings = load_settings(env={}, overrides={
            ("storage", "data_dir"): str(tmp_path), ("schedules", "misfire_grace"): grace,
            ("limits", "monthly_job_quota"): quota,
        })
        async with make_database() as db:
            core = Core(settings, clock, db, Vault(key))
            await db.write(lambda conn: workspaces.bootstrap(conn, "rt_ws_unit_test_key", clock.now_ms()))
            await db.write(lambda conn: core.queues.load(conn, core.vault))
            row = await db.fetchone("SELECT id FROM workspace")
            principal = Principal(key_id="key_test", workspace_id=row[0], role=Role.ADMIN)
            if not core.queues.of_workspace(principal.workspace_id):
                await queues.create_queue(core, principal, QueueCreate(name="reports"))
            yield Env(core=core, scheduler=Scheduler(core), principal=principal, clock=clock)

    return open_

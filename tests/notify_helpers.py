"""An in-process Core on a real SQLite file with a fake clock and the notification parts installed."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rotor_lite.config import load_settings
from rotor_lite.crypto import Vault
from rotor_lite.engine.outbox import OutboxDelivery, install_notifications
from rotor_lite.engine.runtime import make_deliverer
from rotor_lite.models import Principal, Role
from rotor_lite.services import workspaces
from rotor_lite.services.core import Core
from rotor_lite.services.events import OutboxSink
from rotor_lite.store.db import Database

START_MS = 1_790_000_000_000


class FakeClock:
    """Time stands still until a test moves it."""

    def __init__(self, now: int = START_MS) -> None:
        self.now = now

    def now_ms(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@dataclass
class NotifyEnv:
    core: Core
    sink: OutboxSink
    outbox: OutboxDelivery
    principal: Principal
    clock: FakeClock

    async def run(self) -> None:
        """One delivery pass, waiting for every send it started to be recorded."""
        await self.outbox.pump()
        await self.outbox.settle()


@asynccontextmanager
async def notify_env(
    tmp_path: Path, key: bytes | None = None, retry_schedule: list[str] | None = None, **settings: Any
) -> AsyncIterator[NotifyEnv]:
    """A Core with the outbox sink, vault values and a delivery task that a test drives by hand.

    `settings` are `section__key=value` overrides.
    """
    values = {("storage", "data_dir"): str(tmp_path), ("callbacks", "allow_private_networks"): True,
              ("webhooks", "retry_schedule"): retry_schedule or ["0s", "30s", "5m"],
              ("delivery", "processes"): 0,
              **{tuple(name.split("__", 1)): value for name, value in settings.items()}}
    settings = load_settings(env={}, overrides=values)
    clock = FakeClock()
    async with Database(settings.db_path, "OFF") as db:
        core = Core(settings, clock, db, Vault(key or os.urandom(32)))
        await db.write(lambda conn: workspaces.bootstrap(conn, "rt_ws_unit_test_key", clock.now_ms()))
        row = await db.fetchone("SELECT id FROM workspace")
        principal = Principal(key_id="key_test", workspace_id=row[0], role=Role.ADMIN)
        sink = install_notifications(core)
        async with make_deliverer(settings, clock, core.secret_values) as deliverer, \
                OutboxDelivery(core, sink, deliverer, run_loop=False) as outbox:
            yield NotifyEnv(core=core, sink=sink, outbox=outbox, principal=principal, clock=clock)

"""The run driver: a pass's work is bounded by its batch, calls are built without reads, due times are kept.

A real SQLite file and Core under a fake clock; the driver's pass runs as it does in the server, and
a stub stands in for the delivery engine (no HTTP).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from rotor_lite.config import load_settings
from rotor_lite.crypto import Vault
from rotor_lite.engine.sending import Answer, Post
from rotor_lite.engine.workflows import RunDriver, _Op
from rotor_lite.models import Principal, Role, Step, StepStatus, StepType
from rotor_lite.schemas import FunctionCreate
from rotor_lite.services import functions, workspaces
from rotor_lite.services.core import Core
from rotor_lite.services.workflow_events import publish
from rotor_lite.store import runs as store
from rotor_lite.store.db import Database
from tests.unit.schedules.conftest import FakeClock

SLOTS = 8


class StubDeliverer:
    """Answers every call `{"type": "waiting"}` and keeps the bodies it was given."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def post(self, post: Post) -> Answer:
        self.bodies.append(msgspec.json.decode(post.body))
        return Answer(status=200, body=b'{"type": "waiting"}')


@asynccontextmanager
async def driver_env(tmp_path: Path) -> AsyncIterator[tuple[Core, RunDriver, StubDeliverer, Principal]]:
    settings = load_settings(env={}, overrides={
        ("storage", "data_dir"): str(tmp_path), ("workflows", "max_in_flight"): SLOTS,
        ("callbacks", "allow_private_networks"): True, ("workflows", "poll_interval"): "5s",
    })
    clock = FakeClock("2026-12-01T09:00:00+00:00")
    async with Database(settings.db_path, "OFF") as db:
        core = Core(settings, clock, db, Vault(os.urandom(32)))
        await db.write(lambda conn: workspaces.bootstrap(conn, "rt_ws_unit_test_key", clock.now_ms()))
        row = await db.fetchone("SELECT id FROM workspace")
        principal = Principal(key_id="key_test", workspace_id=row[0], role=Role.ADMIN)
        await functions.register_function(core, principal, FunctionCreate(
            id="flow", serve_url="http://127.0.0.1:9/wf", trigger_event="flow.start",
        ))
        deliverer = StubDeliverer()
        yield core, RunDriver(core, deliverer), deliverer, principal  # type: ignore[arg-type]


async def trigger(core: Core, principal: Principal, runs: int) -> None:
    def write(conn: sqlite3.Connection) -> None:
        for n in range(runs):
            publish(core, conn, principal.workspace_id, "flow.start", {"n": n})

    await core.db.write(write)


async def pass_cost(tmp_path: Path, due_runs: int) -> int:
    """SQLite VM steps (in tens) of one driver pass with `due_runs` runs due and SLOTS free slots."""
    async with driver_env(tmp_path) as (core, driver, _, principal):
        await trigger(core, principal, due_runs)
        steps = [0]

        def counted(conn: sqlite3.Connection) -> None:
            conn.set_progress_handler(lambda: steps.__setitem__(0, steps[0] + 1), 10)
            try:
                driver._run_op(conn, _Op([], claim=True))
            finally:
                conn.set_progress_handler(None, 10)

        await core.db.write(counted)
        return steps[0]


async def test_a_pass_costs_the_same_whatever_the_backlog_of_due_runs_beyond_a_batch(tmp_path: Path) -> None:
    small = await pass_cost(tmp_path / "small", due_runs=1000)
    large = await pass_cost(tmp_path / "large", due_runs=5000)
    assert large < 1.5 * small, (small, large)  # it used to read every due run on every pass


async def test_a_due_run_whose_step_call_is_open_is_not_called_and_stops_being_due(tmp_path: Path) -> None:
    async with driver_env(tmp_path) as (core, driver, deliverer, principal):
        await trigger(core, principal, 2)
        blocked, free = await core.db.fetchall("SELECT rowid FROM run ORDER BY rowid")

        def schedule_step(conn: sqlite3.Connection) -> None:
            now = core.clock.now_ms()
            store.insert_step(conn, Step(
                rowid=0, run_rowid=blocked[0], key="work:1", name="work", type=StepType.RUN,
                status=StepStatus.RUNNING, attempts=1, output=None, error=None, child_run_id=None, signal=None,
                event_name=None, started_at=now, ended_at=None, due_at=None,
            ))

        await core.db.write(schedule_step)
        op = _Op([], claim=True)
        await core.db.write(partial(driver._run_op, op=op))
        assert [call.run_rowid for call, _ in op.calls] == [free[0]]
        row = await core.db.fetchone("SELECT due_at FROM run WHERE rowid = ?", (blocked[0],))
        assert row[0] is None  # not due until its step call ends


async def test_a_call_is_built_in_the_pass_that_leased_it_without_reads(tmp_path: Path) -> None:
    async with driver_env(tmp_path) as (core, driver, deliverer, principal):
        await trigger(core, principal, 3)
        reads = [0]
        fetchone, fetchall = core.db.fetchone, core.db.fetchall

        async def counted_one(*args: Any) -> Any:
            reads[0] += 1
            return await fetchone(*args)

        async def counted_all(*args: Any) -> Any:
            reads[0] += 1
            return await fetchall(*args)

        core.db.fetchone, core.db.fetchall = counted_one, counted_all  # type: ignore[method-assign]
        await driver._pass()
        await asyncio.gather(*driver._tasks)
        assert reads[0] == 0  # each call used to read its run and its steps through the reader first
        assert sorted(body["event"]["data"]["n"] for body in deliverer.bodies) == [0, 1, 2]
        assert all(body["steps"] == {} and body["target"] is None for body in deliverer.bodies)


async def test_a_due_time_that_comes_between_a_pass_and_its_sleep_is_not_slept_through(tmp_path: Path) -> None:
    async with driver_env(tmp_path) as (core, driver, _, principal):
        soon = core.clock.now_ms() + 1
        await core.db.write(lambda conn: publish(core, conn, principal.workspace_id, "later", {}, ts=soon))
        await driver._pass()  # the deferred event is the next due time, 1 ms ahead
        core.clock.advance(2)  # and it comes before the driver goes to sleep
        await asyncio.wait_for(driver._sleep(), 1)  # it used to sleep through it for the poll interval (5 s)

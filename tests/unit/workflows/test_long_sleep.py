"""A run sleeps for seven days across a restart and wakes on time: the real runtime under an injected clock.

The app here speaks the protocol by hand (no signature check), because the clock that signs its calls
jumps days ahead of the real one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from rotor_lite.models import Principal, Role
from rotor_lite.schemas import EventSend, FunctionCreate
from rotor_lite.services import functions, runs, workflow_events
from rotor_lite.store import runs as run_store
from tests.helpers import free_port
from tests.unit.schedules.conftest import FakeClock
from tests.unit.workflows.runtime_kit import running, serve_protocol, until

SEVEN_DAYS_MS = 7 * 86_400_000


def sleeper(calls: list[dict[str, Any]]) -> Any:
    """An app's handler: sleep seven days, then return."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        calls.append(body)
        if "nap:1" not in body["steps"]:
            plan = [{"key": "nap:1", "id": "nap", "type": "sleep", "opts": {"ms": SEVEN_DAYS_MS}}]
            return web.json_response({"type": "plan", "steps": plan})
        if body["steps"]["nap:1"]["status"] == "pending":
            return web.json_response({"type": "waiting"})
        return web.json_response({"type": "complete", "output": {"woke": True}})

    return handle


async def test_a_seven_day_sleep_survives_a_restart_and_wakes_on_time(tmp_path: Path) -> None:
    clock = FakeClock("2026-12-01T09:00:00+00:00")
    calls: list[dict[str, Any]] = []
    port = free_port()
    app = await serve_protocol(port, sleeper(calls))
    try:
        async with running(tmp_path, clock) as runtime:
            core = runtime.core
            assert core is not None
            row = await core.db.fetchone("SELECT id FROM workspace")
            principal = Principal(key_id="key_test", workspace_id=row[0], role=Role.ADMIN)
            await functions.register_function(core, principal, FunctionCreate(
                id="napper", serve_url=f"http://127.0.0.1:{port}/wf", trigger_event="nap.start",
            ))
            [run_id] = (await workflow_events.send_event(core, principal, EventSend(name="nap.start"))).run_ids
            started = clock.now_ms()

            async def sleeping() -> bool:
                return (await runs.get_run(core, principal, run_id)).status.value == "sleeping"

            await until(sleeping)
        clock.advance(SEVEN_DAYS_MS - 1000)  # down for almost a week
        async with running(tmp_path, clock) as runtime:
            core = runtime.core
            assert core is not None
            await asyncio.sleep(0.2)  # several passes of the driver: nothing is due yet
            assert (await runs.get_run(core, principal, run_id)).status.value == "sleeping"
            clock.advance(1000)

            async def completed() -> Any:
                run = await runs.get_run(core, principal, run_id)
                return run.status.value == "completed" and run

            run = await until(completed)
            assert run.output == b'{"woke":true}'
            steps = {step.key: step for step in await run_store.fetch_steps(core.db, run.rowid)}
            assert steps["nap:1"].ended_at == started + SEVEN_DAYS_MS
    finally:
        await app.cleanup()

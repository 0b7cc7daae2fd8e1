"""A step's answer may say what the function does next (`then`): rotor-lite carries it out without another call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from rotor_lite.clock import SystemClock
from rotor_lite.models import Principal, Role, RunStatus
from rotor_lite.schemas import EventSend, FunctionCreate
from rotor_lite.services import functions, runs, workflow_events
from rotor_lite.store import runs as run_store
from tests.helpers import free_port
from tests.unit.workflows.runtime_kit import running, serve_protocol, until


def step_then_sleep_then_end(calls: list[dict[str, Any]]) -> Any:
    """A step whose answer carries the sleep after it; after the sleep, a step whose answer carries the end."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        calls.append(body)
        steps = body["steps"]
        if "a:1" not in steps:
            nap = {"key": "nap:1", "id": "nap", "type": "sleep", "opts": {"ms": 50}}
            return web.json_response({"type": "step", "key": "a:1", "id": "a", "status": "completed", "output": 1,
                                      "then": {"type": "plan", "steps": [nap]}})
        if steps["nap:1"]["status"] == "pending":
            return web.json_response({"type": "waiting"})
        return web.json_response({"type": "step", "key": "b:1", "id": "b", "status": "completed", "output": 2,
                                  "then": {"type": "complete", "output": 3}})

    return handle


async def test_a_step_answer_with_then_needs_no_further_call(tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    port = free_port()
    app = await serve_protocol(port, step_then_sleep_then_end(calls))
    try:
        async with running(tmp_path, SystemClock()) as runtime:
            core = runtime.core
            assert core is not None
            row = await core.db.fetchone("SELECT id FROM workspace")
            principal = Principal(key_id="key_test", workspace_id=row[0], role=Role.ADMIN)
            await functions.register_function(core, principal, FunctionCreate(
                id="then", serve_url=f"http://127.0.0.1:{port}/wf", trigger_event="go",
            ))
            [run_id] = (await workflow_events.send_event(core, principal, EventSend(name="go"))).run_ids

            async def completed() -> Any:
                run = await runs.get_run(core, principal, run_id)
                return run.status == RunStatus.COMPLETED and run

            run = await until(completed)
            assert run.output == b"3"
            steps = {step.key: step.status.value for step in await run_store.fetch_steps(core.db, run.rowid)}
            assert steps == {"a:1": "completed", "nap:1": "completed", "b:1": "completed"}
            assert len(calls) == 2  # one call per step: the sleep and the end came with the steps' outputs
    finally:
        await app.cleanup()

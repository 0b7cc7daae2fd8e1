"""A fault while recording one run's progress fails that run, never the run driver or the other runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from rotor_lite.clock import SystemClock
from rotor_lite.models import Principal, Role, Run, RunStatus
from rotor_lite.schemas import EventSend, FunctionCreate
from rotor_lite.services import functions, run_progress, runs, workflow_events
from tests.helpers import free_port
from tests.unit.workflows.runtime_kit import running, serve_protocol, until


async def complete_at_once(request: web.Request) -> web.Response:
    """Every function returns at once."""
    return web.json_response({"type": "complete", "output": {"ok": True}})


async def test_a_run_whose_answer_cannot_be_recorded_fails_and_the_others_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_complete = run_progress._complete

    def broken_for_bad(core: Any, conn: Any, run: Run, output: Any) -> None:
        if run.function_id == "bad":
            raise RuntimeError("a bug in recording")
        real_complete(core, conn, run, output)

    monkeypatch.setattr(run_progress, "_complete", broken_for_bad)
    port = free_port()
    app = await serve_protocol(port, complete_at_once)
    try:
        async with running(tmp_path, SystemClock()) as runtime:
            core = runtime.core
            assert core is not None
            row = await core.db.fetchone("SELECT id FROM workspace")
            principal = Principal(key_id="key_test", workspace_id=row[0], role=Role.ADMIN)
            for name in ("bad", "good"):
                await functions.register_function(core, principal, FunctionCreate(
                    id=name, serve_url=f"http://127.0.0.1:{port}/wf", trigger_event="go",
                ))
            bad_id, good_id = (await workflow_events.send_event(core, principal, EventSend(name="go"))).run_ids

            async def ended() -> Any:
                found = [await runs.get_run(core, principal, run_id) for run_id in (bad_id, good_id)]
                return all(run.status in (RunStatus.COMPLETED, RunStatus.FAILED) for run in found) and found

            bad, good = await until(ended)
            assert bad.status == RunStatus.FAILED and bad.error is not None and "InternalError" in bad.error
            assert good.status == RunStatus.COMPLETED and good.output == b'{"ok":true}'
    finally:
        await app.cleanup()

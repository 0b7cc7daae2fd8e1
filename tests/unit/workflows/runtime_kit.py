"""The real runtime (storage, engine, run driver) in the test's event loop, under a test's clock."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from rotor_lite.clock import Clock
from rotor_lite.config import load_settings
from rotor_lite.engine.runtime import Runtime
from tests.helpers import storage_env

MASTER_KEY = base64.b64encode(os.urandom(32)).decode()


@asynccontextmanager
async def running(tmp_path: Path, clock: Clock) -> AsyncIterator[Runtime]:
    """The runtime on `tmp_path/data`, started and stopped (a second `running` on it is a restart).

    Under `--backend postgres` its store is a database of the run's cluster (the same one on a restart).
    """
    data_dir = tmp_path / "data"
    storage_url = storage_env(data_dir, None).get("ROTOR_STORAGE_URL", "")
    settings = load_settings(env={}, overrides={
        ("storage", "data_dir"): str(data_dir), ("storage", "synchronous"): "OFF", ("storage", "url"): storage_url,
        ("auth", "bootstrap_api_key"): "rt_ws_unit_test_key", ("callbacks", "allow_private_networks"): True,
        ("workflows", "poll_interval"): "20ms", ("security", "master_key"): MASTER_KEY,
    })
    runtime = Runtime(settings, clock)
    await runtime.__aenter__()
    try:
        yield runtime
    finally:
        await runtime.__aexit__(None, None, None)


async def until(predicate: Any, seconds: float = 5.0) -> Any:
    """Await `predicate()` until it is truthy (every 10 ms); fail after `seconds`."""
    for _ in range(int(seconds / 0.01)):
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")


async def serve_protocol(port: int, handle: Any) -> web.AppRunner:
    """An app on 127.0.0.1:`port` that answers POST /wf with `handle` (a hand-written protocol app)."""
    app = web.Application()
    app.router.add_post("/wf", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner

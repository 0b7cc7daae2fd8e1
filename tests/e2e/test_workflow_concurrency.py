"""A function's `concurrency` holds, and a backlog of one function at its limit does not hold up other functions."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, workflow_env
from tests.helpers import ServerProcess, wait_until

release = threading.Event()
_lock = threading.Lock()
running = {"now": 0, "most": 0}


def held_until_released() -> str:
    with _lock:
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
    try:
        release.wait(30)
    finally:
        with _lock:
            running["now"] -= 1
    return "released"


@create_function(id="hog", trigger={"event": "hog.start"}, concurrency=2)
async def hog(ctx: Context, step: Step) -> Any:
    return await step.run("hold", held_until_released)


@create_function(id="bystander", trigger={"event": "bystander.start"})
async def bystander(ctx: Context, step: Step) -> Any:
    return await step.run("quick", lambda: "done")


@pytest.fixture
def env(make_server: Callable[..., ServerProcess]) -> Iterator[WorkflowEnv]:
    # Few call slots, so that a backlog of one function is many times the slots the driver looks at.
    server = make_server(ROTOR_WORKFLOWS_MAX_IN_FLIGHT="3")
    release.clear()
    for wf_env in workflow_env(server):
        wf_env.serve([hog, bystander])
        yield wf_env
        release.set()


def test_a_backlog_at_its_concurrency_limit_does_not_starve_other_functions(env: WorkflowEnv) -> None:
    hogs = [env.send("hog.start", {"n": n})["runIds"][0] for n in range(30)]
    wait_until(lambda: running["now"] == 2)
    [other] = env.send("bystander.start", {})["runIds"]

    done = env.wait_status(other, "completed", timeout=10)

    assert done["output"] == "done"
    assert running["most"] == 2 and sum(env.run(h)["status"] == "pending" for h in hogs) == 28
    release.set()
    for run_id in hogs:
        assert env.wait_status(run_id, "completed", timeout=30)["output"] == "released"
    assert running["most"] == 2

"""Waiting runs survive a restart: an event waiter is found through its pin (reloaded at start), a signal waiter
still holds its id. (A long sleep across a restart and a kill -9 mid-step: test_long_sleep.py, test_workflow_crashes.py.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, workflow_env
from tests.helpers import ServerProcess


@create_function(id="restart-waiter", trigger={"event": "restart.wait"})
async def waiter(ctx: Context, step: Step) -> Any:
    heard = await step.wait_for_event("hear", event="restart.ping", match=f'data.key == "{ctx.run_id}"', timeout="1h")
    signalled = await step.wait_for_signal("gate", signal=f"restart-{ctx.run_id}", timeout="1h")
    return {"heard": heard, "signalled": signalled}


@pytest.fixture
def env(make_server: Callable[..., ServerProcess]) -> Iterator[WorkflowEnv]:
    for wf_env in workflow_env(make_server()):
        wf_env.serve([waiter])
        yield wf_env


def restart(env: WorkflowEnv, make_server: Callable[..., ServerProcess]) -> None:
    assert env.server.terminate() == 0
    env.use(make_server(data_dir=env.server.data_dir))


def test_waiting_runs_carry_on_after_a_restart(env: WorkflowEnv, make_server: Callable[..., ServerProcess]) -> None:
    [first, second] = [env.send("restart.wait", {})["runIds"][0] for _ in range(2)]
    env.wait_step(first, "hear:1", "waiting")
    env.wait_step(second, "hear:1", "waiting")
    assert env.send("restart.ping", {"key": second})["resumed"] == 1
    env.wait_step(second, "gate:1", "waiting")

    restart(env, make_server)

    assert env.send("restart.ping", {"key": "someone else"})["resumed"] == 0
    assert env.send("restart.ping", {"key": first})["resumed"] == 1  # found through its pin, reloaded at start
    env.wait_step(first, "gate:1", "waiting")
    for run_id in (first, second):
        reply = env.http.post(f"/v1/signals/restart-{run_id}/complete", json={"data": run_id})
        assert reply.json() == {"runId": run_id}
        assert env.wait_status(run_id, "completed")["output"] == {"heard": {"key": run_id}, "signalled": run_id}

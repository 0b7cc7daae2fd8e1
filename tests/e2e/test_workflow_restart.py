"""Runs survive the server: sleeping and waiting runs across a restart, and a step in flight at a kill -9."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, workflow_env
from tests.helpers import ServerProcess

executions: Counter[tuple[str, str]] = Counter()
in_flight, release = threading.Event(), threading.Event()


@create_function(id="restart-sleeper", trigger={"event": "restart.sleep"})
async def sleeper(ctx: Context, step: Step) -> Any:
    await step.sleep("nap", ctx.event.data["sleep"])
    return "woke"


@create_function(id="restart-waiter", trigger={"event": "restart.wait"})
async def waiter(ctx: Context, step: Step) -> Any:
    heard = await step.wait_for_event("hear", event="restart.ping", match=f'data.key == "{ctx.run_id}"', timeout="1h")
    signalled = await step.wait_for_signal("gate", signal=f"restart-{ctx.run_id}", timeout="1h")
    return {"heard": heard, "signalled": signalled}


def count(run_id: str, step_id: str) -> int:
    executions[(run_id, step_id)] += 1
    return executions[(run_id, step_id)]


def slow_the_first_time(run_id: str) -> int:
    times = count(run_id, "slow")
    if times == 1:
        in_flight.set()
        release.wait(30)
    return times


@create_function(id="restart-crash", trigger={"event": "restart.crash"})
async def crash(ctx: Context, step: Step) -> Any:
    before = await step.run("before", count, ctx.run_id, "before")
    slow = await step.run("slow", slow_the_first_time, ctx.run_id)
    after = await step.run("after", count, ctx.run_id, "after")
    return {"before": before, "slow": slow, "after": after}


@pytest.fixture
def env(make_server: Callable[..., ServerProcess]) -> Iterator[WorkflowEnv]:
    for wf_env in workflow_env(make_server()):
        wf_env.serve([sleeper, waiter, crash])
        yield wf_env
        release.set()


def ms(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() * 1000


def test_sleeping_and_waiting_runs_carry_on_after_a_restart(env: WorkflowEnv, make_server: Callable[..., ServerProcess]) -> None:
    [sleeping] = env.send("restart.sleep", {"sleep": "3s"})["runIds"]
    [waiting] = env.send("restart.wait", {})["runIds"]
    wake_at = env.wait_step(sleeping, "nap:1", "sleeping")["wakeAt"]
    env.wait_step(waiting, "hear:1", "waiting")

    assert env.server.terminate() == 0
    env.use(make_server(data_dir=env.server.data_dir))

    assert env.send("restart.ping", {"key": "someone else"})["resumed"] == 0
    assert env.send("restart.ping", {"key": waiting})["resumed"] == 1  # found through its pin, reloaded at start
    env.wait_step(waiting, "gate:1", "waiting")
    assert env.http.post(f"/v1/signals/restart-{waiting}/complete", json={"data": "yes"}).json() == {"runId": waiting}
    assert env.wait_status(waiting, "completed")["output"] == {"heard": {"key": waiting}, "signalled": "yes"}
    done = env.wait_status(sleeping, "completed")
    nap = done["steps"][0]
    assert done["output"] == "woke" and nap["wakeAt"] is None
    assert 0 <= ms(nap["endedAt"]) - ms(wake_at) < 1500  # on time (the poll interval is 200 ms)


def test_a_step_in_flight_at_a_kill_9_runs_again_and_the_completed_ones_do_not(
    env: WorkflowEnv, make_server: Callable[..., ServerProcess]
) -> None:
    in_flight.clear(), release.clear()
    [run_id] = env.send("restart.crash", {})["runIds"]
    assert in_flight.wait(15)

    env.server.kill()
    env.use(make_server(data_dir=env.server.data_dir))
    done = env.wait_status(run_id, "completed", "failed", timeout=30)
    release.set()

    assert done["status"] == "completed" and done["output"] == {"before": 1, "slow": 2, "after": 1}
    assert executions[(run_id, "before")] == 1 and executions[(run_id, "after")] == 1
    assert executions[(run_id, "slow")] == 2  # the call in flight at the kill, and its retry

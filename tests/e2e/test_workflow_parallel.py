"""Fan-out: `asyncio.gather` over 100 `step.run`s and over several `step.invoke`s, each step checkpointed on its own."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, workflow_env
from tests.helpers import ServerProcess

PARTS = 100
executed: Counter[tuple[str, int]] = Counter()
_lock = threading.Lock()


def square(run_id: str, i: int) -> int:
    with _lock:  # sync callables run in worker threads
        executed[(run_id, i)] += 1
    return i * i


@create_function(id="fan-out-100", trigger={"event": "fanout.100"}, retries=0)
async def fan_out(ctx: Context, step: Step) -> Any:
    # One step id for all: the keys are "square:1" … "square:100", in the order gather starts them.
    squares = await asyncio.gather(*(step.run("square", square, ctx.run_id, i) for i in range(PARTS)))
    total = await step.run("sum", lambda: sum(squares))
    return {"squares": squares, "total": total}


@create_function(id="scorer", trigger={"event": "scorer.requested"})
async def scorer(ctx: Context, step: Step) -> Any:
    return await step.run("score", lambda: {"scorer": ctx.event.data["name"], "score": len(ctx.event.data["name"])})


@create_function(id="fan-out-invokes", trigger={"event": "fanout.invokes"})
async def fan_out_invokes(ctx: Context, step: Step) -> Any:
    names = ctx.event.data["names"]
    replies = await asyncio.gather(*(
        step.invoke(f"score-{name}", workflow="scorer", data={"name": name}, timeout="1m") for name in names
    ))
    return [reply["result"] for reply in replies]


@pytest.fixture(scope="module")
def env(shared_server: ServerProcess) -> Iterator[WorkflowEnv]:
    for wf_env in workflow_env(shared_server):
        wf_env.serve([fan_out, scorer, fan_out_invokes])
        yield wf_env


def test_100_parallel_steps_each_run_once_and_keep_their_order(env: WorkflowEnv) -> None:
    [run_id] = env.send("fanout.100", {})["runIds"]

    done = env.wait_status(run_id, "completed", "failed", timeout=60)

    assert done["status"] == "completed", done["error"]
    expected = [i * i for i in range(PARTS)]
    assert done["output"] == {"squares": expected, "total": sum(expected)}
    assert {i: executed[(run_id, i)] for i in range(PARTS)} == dict.fromkeys(range(PARTS), 1)
    steps = {s["id"]: s for s in done["steps"]}
    assert set(steps) == {f"square:{n}" for n in range(1, PARTS + 1)} | {"sum:1"}
    assert all(s["status"] == "completed" and s["attempts"] == 1 for s in steps.values())
    assert [steps[f"square:{n}"]["output"] for n in range(1, PARTS + 1)] == expected


def test_gather_over_invokes_returns_each_childs_result_in_order(env: WorkflowEnv) -> None:
    names = ["alpha", "be", "gamma-ray"]
    [run_id] = env.send("fanout.invokes", {"names": names})["runIds"]

    done = env.wait_status(run_id, "completed", "failed", timeout=30)

    assert done["status"] == "completed", done["error"]
    assert done["output"] == [{"scorer": name, "score": len(name)} for name in names]
    invokes = [s for s in done["steps"] if s["type"] == "invoke"]
    assert [s["id"] for s in invokes] == [f"score-{name}:1" for name in names]
    children = [s["childRunId"] for s in invokes]
    assert sorted(done["childRunIds"]) == sorted(children) and len(set(children)) == len(names)
    for name, child_id in zip(names, children, strict=True):
        child = env.run(child_id)
        assert child["parentRunId"] == run_id and child["event"]["data"] == {"name": name}
        assert child["status"] == "completed"

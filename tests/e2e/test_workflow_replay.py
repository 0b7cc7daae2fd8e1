"""`POST /v1/runs/:id/replay`: a failed (or cancelled) run starts again as a new run that keeps the outcomes of its
completed steps (their side effects do not happen again) and reruns from the step that failed."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, workflow_env
from tests.helpers import ServerProcess

side_effects: Counter[tuple[str, str]] = Counter()
broken_orders: set[str] = set()


def charge(order: str) -> dict[str, Any]:
    side_effects[(order, "charge")] += 1
    return {"charged": order, "time": side_effects[(order, "charge")]}


def email(order: str) -> str:
    side_effects[(order, "email")] += 1
    if order in broken_orders:
        raise RuntimeError("the mail server is down")
    return f"mailed {order}"


@create_function(id="replayable", trigger={"event": "order.placed"}, retries=0)
async def replayable(ctx: Context, step: Step) -> Any:
    order = ctx.event.data["order"]
    charged = await step.run("charge", charge, order)
    mailed = await step.run("email", email, order)
    if ctx.event.data.get("wait"):
        await step.wait_for_signal("hold", signal=f"hold-{ctx.run_id}", timeout="1h")
    return {"charged": charged, "mailed": mailed}


@pytest.fixture(scope="module")
def env(shared_server: ServerProcess) -> Iterator[WorkflowEnv]:
    for wf_env in workflow_env(shared_server):
        wf_env.serve([replayable])
        yield wf_env


def new_order() -> str:
    return f"o_{uuid.uuid4().hex[:8]}"


def test_a_failed_run_replays_from_its_failed_step(env: WorkflowEnv) -> None:
    order = new_order()
    broken_orders.add(order)
    [run_id] = env.send("order.placed", {"order": order})["runIds"]
    failed = env.wait_status(run_id, "completed", "failed")
    assert failed["status"] == "failed" and failed["error"]["name"] == "RuntimeError"
    broken_orders.discard(order)  # the mail server is back

    reply = env.http.post(f"/v1/runs/{run_id}/replay")

    assert reply.status_code == 201, reply.text
    replay = reply.json()
    assert replay["id"] != run_id and replay["replayOf"] == run_id
    assert replay["event"] == failed["event"] and replay["functionId"] == "replayable"
    done = env.wait_status(replay["id"], "completed", "failed")
    assert done["status"] == "completed"
    assert done["output"] == {"charged": {"charged": order, "time": 1}, "mailed": f"mailed {order}"}
    assert side_effects[(order, "charge")] == 1 and side_effects[(order, "email")] == 2
    steps = {s["id"]: s for s in done["steps"]}
    assert steps["charge:1"]["output"] == failed["steps"][0]["output"] and steps["charge:1"]["status"] == "completed"
    assert steps["email:1"]["status"] == "completed" and steps["email:1"]["attempts"] == 1
    assert env.run(run_id)["status"] == "failed"  # the original is kept as it was


def test_a_cancelled_run_replays_too(env: WorkflowEnv) -> None:
    order = new_order()
    [run_id] = env.send("order.placed", {"order": order, "wait": True})["runIds"]
    env.wait_step(run_id, "hold:1", "waiting")
    env.http.post(f"/v1/runs/{run_id}/cancel")

    replay = env.http.post(f"/v1/runs/{run_id}/replay").json()

    env.wait_step(replay["id"], "hold:1", "waiting")
    assert side_effects[(order, "charge")] == 1 and side_effects[(order, "email")] == 1
    assert env.http.post(f"/v1/signals/hold-{replay['id']}/complete", json={"data": {}}).status_code == 200
    assert env.wait_status(replay["id"], "completed")["output"]["mailed"] == f"mailed {order}"


def test_only_failed_or_cancelled_runs_replay(env: WorkflowEnv) -> None:
    order = new_order()
    [completed] = env.send("order.placed", {"order": order})["runIds"]
    env.wait_status(completed, "completed")
    [waiting] = env.send("order.placed", {"order": new_order(), "wait": True})["runIds"]
    env.wait_step(waiting, "hold:1", "waiting")

    runs_before = env.http.get("/v1/runs", params={"function": "replayable", "limit": 200}).json()["data"]

    for run_id, status in ((completed, "completed"), (waiting, "waiting")):
        reply = env.http.post(f"/v1/runs/{run_id}/replay")
        assert reply.status_code == 409 and reply.json()["error"]["code"] == "CONFLICT"
        assert reply.json()["error"]["details"]["status"] == status
    assert env.http.post("/v1/runs/run_does_not_exist/replay").status_code == 404
    assert env.http.get("/v1/runs", params={"function": "replayable", "limit": 200}).json()["data"][0] == runs_before[0]
    env.http.post(f"/v1/runs/{waiting}/cancel")

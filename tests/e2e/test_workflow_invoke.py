"""`step.invoke` end to end: success, child failure, timeout (the child keeps running), cancel in both directions,
and the invokes that cannot start (a cron-triggered function, an unknown function id)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.errors import NonRetriableError, WorkflowError
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, workflow_env
from tests.helpers import ServerProcess


@create_function(id="child-doubler", trigger={"event": "child.double"})
async def doubler(ctx: Context, step: Step) -> Any:
    return await step.run("double", lambda: ctx.event.data["n"] * 2)


@create_function(id="child-broken", trigger={"event": "child.broken"}, retries=0)
async def broken(ctx: Context, step: Step) -> Any:
    raise NonRetriableError("the child gives up")


@create_function(id="child-slow", trigger={"event": "child.slow"})
async def slow(ctx: Context, step: Step) -> Any:
    await step.sleep("nap", ctx.event.data["sleep"])
    return {"woke": True}


@create_function(id="child-gated", trigger={"event": "child.gated"})
async def gated(ctx: Context, step: Step) -> Any:
    return await step.wait_for_signal("gate", signal=f"gate-{ctx.run_id}", timeout="1h")


@create_function(id="child-middle", trigger={"event": "child.middle"})
async def middle(ctx: Context, step: Step) -> Any:
    return await step.invoke("leaf", workflow="child-gated", data={}, timeout="1h")


@create_function(id="cron-report", trigger={"cron": "0 0 1 1 *", "timezone": "UTC"})
async def cron_report(ctx: Context, step: Step) -> Any:
    return None


@create_function(id="invoker", trigger={"event": "invoker.start"}, retries=0)
async def invoker(ctx: Context, step: Step) -> Any:
    """Invokes `data.workflow` and reports what came back or what was raised (unless told not to catch)."""
    data = ctx.event.data
    call = step.invoke("call", workflow=data["workflow"], data=data.get("data"), timeout=data.get("timeout", "1m"))
    if data.get("uncaught"):
        return await call
    try:
        return {"reply": await call}
    except WorkflowError as exc:
        return {"raised": type(exc).__name__, "name": exc.name, "message": exc.message}


@pytest.fixture(scope="module")
def env(shared_server: ServerProcess) -> Iterator[WorkflowEnv]:
    for wf_env in workflow_env(shared_server):
        wf_env.serve([doubler, broken, slow, gated, middle, cron_report, invoker])
        yield wf_env


def start(env: WorkflowEnv, **data: Any) -> str:
    [run_id] = env.send("invoker.start", data)["runIds"]
    return run_id


def child_of(env: WorkflowEnv, run_id: str) -> str:
    step = env.wait_step(run_id, "call:1", "waiting")
    assert step["childRunId"], step
    return str(step["childRunId"])


def test_invoke_returns_the_childs_result_and_run_id(env: WorkflowEnv) -> None:
    run_id = start(env, workflow="child-doubler", data={"n": 21})

    done = env.wait_status(run_id, "completed", "failed")

    child_id = done["steps"][0]["childRunId"]
    assert done["output"] == {"reply": {"result": 42, "runId": child_id}}
    assert done["childRunIds"] == [child_id]
    child = env.run(child_id)
    assert child["status"] == "completed" and child["parentRunId"] == run_id and child["event"]["data"] == {"n": 21}
    assert child["event"]["name"] == "child.double"


def test_a_failed_child_raises_workflow_failed_error_in_the_parent(env: WorkflowEnv) -> None:
    run_id = start(env, workflow="child-broken")

    done = env.wait_status(run_id, "completed", "failed")

    assert done["status"] == "completed"
    assert done["output"]["raised"] == "WorkflowFailedError" and done["output"]["name"] == "WorkflowFailedError"
    assert "the child gives up" in done["output"]["message"]
    [step] = done["steps"]
    assert step["status"] == "failed" and step["error"]["name"] == "WorkflowFailedError"
    assert env.run(step["childRunId"])["status"] == "failed"


def test_a_timed_out_invoke_raises_while_the_child_keeps_running_and_completes(env: WorkflowEnv) -> None:
    run_id = start(env, workflow="child-slow", data={"sleep": "1500ms"}, timeout="200ms")

    done = env.wait_status(run_id, "completed", "failed")

    assert done["output"]["raised"] == "WorkflowTimeoutError"
    [step] = done["steps"]
    assert step["status"] == "failed" and step["error"]["name"] == "WorkflowTimeoutError"
    child_id = step["childRunId"]
    assert child_id in done["output"]["message"]
    assert env.run(child_id)["status"] == "sleeping"  # not cancelled by the parent's timeout
    child = env.wait_status(child_id, "completed", "failed", "cancelled")
    assert child["status"] == "completed" and child["output"] == {"woke": True}
    assert env.step(run_id, "call:1") == step  # the late result changes nothing in the parent


def test_a_cancelled_child_raises_workflow_cancelled_error_in_the_parent(env: WorkflowEnv) -> None:
    run_id = start(env, workflow="child-gated")
    child_id = child_of(env, run_id)
    env.wait_step(child_id, "gate:1", "waiting")

    cancelled = env.http.post(f"/v1/runs/{child_id}/cancel")

    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    done = env.wait_status(run_id, "completed", "failed")
    assert done["output"]["raised"] == "WorkflowCancelledError" and child_id in done["output"]["message"]
    assert done["steps"][0]["error"]["name"] == "WorkflowCancelledError"


def test_cancelling_a_parent_cancels_its_children_recursively(env: WorkflowEnv) -> None:
    run_id = start(env, workflow="child-middle")
    middle_id = child_of(env, run_id)
    leaf_id = env.wait_step(middle_id, "leaf:1", "waiting")["childRunId"]
    env.wait_step(leaf_id, "gate:1", "waiting")

    assert env.http.post(f"/v1/runs/{run_id}/cancel").json()["status"] == "cancelled"

    for rid in (run_id, middle_id, leaf_id):
        assert env.run(rid)["status"] == "cancelled", rid
    assert env.step(leaf_id, "gate:1")["status"] == "cancelled"
    assert env.http.post(f"/v1/signals/gate-{leaf_id}/complete", json={"data": {}}).status_code == 404
    again = env.http.post(f"/v1/runs/{run_id}/cancel")  # idempotent
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


@pytest.mark.parametrize(("workflow", "reason"), [
    ("cron-report", "function 'cron-report' is cron-triggered and cannot be invoked"),
    ("no-such-function", "function 'no-such-function' does not exist"),
])
def test_an_invoke_that_cannot_start_fails_the_step_and_the_run(env: WorkflowEnv, workflow: str, reason: str) -> None:
    caught = start(env, workflow=workflow)
    uncaught = start(env, workflow=workflow, uncaught=True)

    handled = env.wait_status(caught, "completed", "failed")
    assert handled["output"] == {"raised": "StepError", "name": "InvokeError", "message": reason}
    failed = env.wait_status(uncaught, "completed", "failed")
    assert failed["status"] == "failed" and failed["error"] == {"name": "InvokeError", "message": reason}
    [step] = failed["steps"]
    assert step["status"] == "failed" and step["error"] == {"name": "InvokeError", "message": reason}
    assert step["childRunId"] is None and failed["childRunIds"] == []


def test_the_cancel_event_cancels_a_run_and_its_children(env: WorkflowEnv) -> None:
    run_id = start(env, workflow="child-gated")
    child_id = child_of(env, run_id)
    env.wait_step(child_id, "gate:1", "waiting")

    sent = env.send("rotor/cancel.run", {"runId": run_id})

    assert sent["runIds"] == [] and sent["resumed"] == 0
    assert env.run(run_id)["status"] == "cancelled" and env.run(child_id)["status"] == "cancelled"
    assert env.send("rotor/cancel.run", {"runId": "run_unknown"})["runIds"] == []  # an unknown id does nothing

"""Steps that cannot be saved or carried out end in a clear error on the step and the run, never a hang or a 500:
outputs over the limit or not JSON, a missing timeout, bad events, too long a signal id, too many steps, and a
serve URL that does not speak the protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, workflow_env
from tests.helpers import Receiver, ServerProcess

MIB = 1024 * 1024


async def not_json(ctx: Context, step: Step) -> Any:
    return await step.run("obj", object)


async def too_large_step(ctx: Context, step: Step) -> Any:
    return await step.run("big", lambda: "x" * (4 * MIB))


async def too_large_return(ctx: Context, step: Step) -> Any:
    return "x" * (4 * MIB)


async def no_timeout(ctx: Context, step: Step) -> Any:
    return await step.invoke("call", workflow="anything")  # type: ignore[call-arg]


async def bad_event_name(ctx: Context, step: Step) -> Any:
    return await step.send_event("send", name="not a name", data={})


async def too_much_event_data(ctx: Context, step: Step) -> Any:
    return await step.send_event("send", name="step.errors.big", data={"blob": "x" * (512 * 1024)})


async def long_signal(ctx: Context, step: Step) -> Any:
    return await step.wait_for_signal("gate", signal="s" * 257, timeout="1h")


async def too_many_steps(ctx: Context, step: Step) -> Any:
    await asyncio.gather(*(step.sleep("nap", 0) for _ in range(1001)))


CASES = {
    "not-json": (not_json, {"name": "OutputError"}, "obj:1"),
    "too-large-step": (too_large_step, {"name": "OutputError"}, "big:1"),
    "too-large-return": (too_large_return, {"name": "OutputError"}, None),
    "no-timeout": (no_timeout, {"name": "TypeError"}, None),
    "bad-event-name": (bad_event_name, {"name": "SendEventError"}, "send:1"),
    "too-much-event-data": (too_much_event_data, {"name": "SendEventError"}, "send:1"),
    "long-signal": (long_signal, {"name": "InvalidStepError"}, "gate:1"),
    "too-many-steps": (too_many_steps, {"name": "StepLimitExceeded"}, None),
}
FUNCTIONS = {
    case: create_function(id=f"err-{case}", trigger={"event": f"step.errors.{case}"}, retries=0)(handler)
    for case, (handler, _, _) in CASES.items()
}


@pytest.fixture(scope="module")
def env(shared_server: ServerProcess) -> Iterator[WorkflowEnv]:
    for wf_env in workflow_env(shared_server):
        wf_env.serve(list(FUNCTIONS.values()))
        yield wf_env


@pytest.mark.parametrize("case", CASES)
def test_a_step_that_cannot_be_saved_or_carried_out_fails_the_step_and_the_run(env: WorkflowEnv, case: str) -> None:
    _, error, step_key = CASES[case]
    [run_id] = env.send(f"step.errors.{case}", {})["runIds"]

    failed = env.wait_status(run_id, "completed", "failed", timeout=30)

    assert failed["status"] == "failed" and failed["error"]["name"] == error["name"], failed["error"]
    assert failed["error"]["message"]
    if step_key is not None:
        step = next(s for s in failed["steps"] if s["id"] == step_key)
        assert step["status"] == "failed" and step["error"] == failed["error"]


def test_a_serve_url_that_does_not_speak_the_protocol_fails_the_run_after_its_retries(env: WorkflowEnv) -> None:
    with Receiver() as receiver:  # answers 200 {"ok": true} to everything
        created = env.http.post("/v1/functions", json={
            "id": "err-not-an-app", "serve_url": receiver.url("/rotor"), "trigger_event": "step.errors.not-an-app",
            "retries": 2,
        })
        assert created.status_code == 201
        [run_id] = env.send("step.errors.not-an-app", {})["runIds"]

        failed = env.wait_status(run_id, "completed", "failed")

        assert len(receiver.for_path("/rotor")) == 3 and failed["attempt"] == 3
    assert failed["error"]["name"] == "CallFailed" and "not one of the protocol's" in failed["error"]["message"]
    call = receiver.for_path("/rotor")[0]
    assert call.headers["x-rotor-run-id"] == run_id and call.headers["x-rotor-function-id"] == "err-not-an-app"
    assert call.headers["x-rotor-signature"].startswith("v1,") and call.json()["kind"] == "run"
    env.http.delete("/v1/functions/err-not-an-app")

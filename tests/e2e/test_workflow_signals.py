"""`step.wait_for_signal` and `POST /v1/signals/:id/complete`: every answer (200/404/409/410/422), collisions, timeouts.

Another workspace's signal id (404) is covered in test_workflow_isolation.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.errors import SignalTimeoutError
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, workflow_env
from tests.helpers import ServerProcess


@create_function(id="signal-waiter", trigger={"event": "signal.wait"}, retries=0)
async def signal_waiter(ctx: Context, step: Step) -> Any:
    data = ctx.event.data
    wait = step.wait_for_signal("gate", signal=data["signal"], timeout=data.get("timeout", "1h"))
    if not data.get("catch"):
        return {"got": await wait}
    try:
        return {"got": await wait}
    except SignalTimeoutError as exc:
        return {"caught": type(exc).__name__, "message": exc.message}


@pytest.fixture(scope="module")
def env(shared_server: ServerProcess) -> Iterator[WorkflowEnv]:
    for wf_env in workflow_env(shared_server):
        wf_env.serve([signal_waiter])
        yield wf_env


def waiting_on(env: WorkflowEnv, signal: str | None = None, **data: Any) -> tuple[str, str]:
    """A run waiting on a signal (a fresh id unless given): (run id, signal id)."""
    signal = signal or f"sig-{uuid.uuid4().hex[:12]}"
    [run_id] = env.send("signal.wait", {"signal": signal, **data})["runIds"]
    env.wait_step(run_id, "gate:1", "waiting")
    return run_id, signal


def complete(env: WorkflowEnv, signal: str, **body: Any) -> httpx.Response:
    return env.http.post(f"/v1/signals/{signal}/complete", json=body)


def error_code(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"]["code"])


def test_completing_a_signal_resumes_its_run_with_the_data(env: WorkflowEnv) -> None:
    run_id, signal = waiting_on(env)
    assert env.run(run_id)["status"] == "waiting"
    assert env.step(run_id, "gate:1")["signal"] == signal

    reply = complete(env, signal, data={"approved": True}, runId=run_id)

    assert reply.status_code == 200 and reply.json() == {"runId": run_id}
    done = env.wait_status(run_id, "completed", "failed")
    assert done["output"] == {"got": {"approved": True}}
    assert done["steps"][0]["output"] == {"approved": True}


def test_an_unknown_signal_is_404(env: WorkflowEnv) -> None:
    assert error_code(complete(env, "no-such-signal", data={}), 404) == "NOT_FOUND"


def test_a_signal_whose_run_was_cancelled_is_404(env: WorkflowEnv) -> None:
    run_id, signal = waiting_on(env)
    env.http.post(f"/v1/runs/{run_id}/cancel")

    assert error_code(complete(env, signal, data={}), 404) == "NOT_FOUND"


def test_a_run_id_other_than_the_waiting_run_is_409_and_changes_nothing(env: WorkflowEnv) -> None:
    run_id, signal = waiting_on(env)
    other_run, _ = waiting_on(env)

    assert error_code(complete(env, signal, data={"x": 1}, runId=other_run), 409) == "CONFLICT"
    assert error_code(complete(env, signal, data={"x": 1}, runId="run_unknown"), 409) == "CONFLICT"

    assert env.run(run_id)["status"] == "waiting"
    assert complete(env, signal, data={"x": 2}, runId=run_id).status_code == 200
    assert env.wait_status(run_id, "completed")["output"] == {"got": {"x": 2}}


def test_a_resolved_signal_is_410(env: WorkflowEnv) -> None:
    run_id, signal = waiting_on(env)
    assert complete(env, signal, data=1).status_code == 200

    assert error_code(complete(env, signal, data=2), 410) == "GONE"
    assert env.wait_status(run_id, "completed")["output"] == {"got": 1}


def test_a_timed_out_signal_raises_signal_timeout_error_and_is_then_410(env: WorkflowEnv) -> None:
    caught, caught_signal = waiting_on(env, timeout="200ms", catch=True)
    uncaught, uncaught_signal = waiting_on(env, timeout="200ms")

    handled = env.wait_status(caught, "completed", "failed")
    assert handled["output"]["caught"] == "SignalTimeoutError" and caught_signal in handled["output"]["message"]
    failed = env.wait_status(uncaught, "completed", "failed")
    assert failed["status"] == "failed" and failed["error"]["name"] == "SignalTimeoutError"
    assert failed["steps"][0]["status"] == "failed" and failed["steps"][0]["error"]["name"] == "SignalTimeoutError"
    for signal in (caught_signal, uncaught_signal):
        assert error_code(complete(env, signal, data={}), 410) == "GONE"


def test_completing_without_data_is_422(env: WorkflowEnv) -> None:
    run_id, signal = waiting_on(env)

    for body in ({}, {"runId": run_id}):
        response = complete(env, signal, **body)
        assert error_code(response, 422) == "VALIDATION_ERROR" and response.json()["error"]["details"]["field"] == "data"
    assert error_code(complete(env, signal, data={}, extra=1), 422) == "VALIDATION_ERROR"
    assert env.run(run_id)["status"] == "waiting"
    assert complete(env, signal, data=None).status_code == 200  # null is data
    assert env.wait_status(run_id, "completed")["output"] == {"got": None}


def test_a_second_run_waiting_on_a_held_signal_fails_with_signal_collision(env: WorkflowEnv) -> None:
    holder, signal = waiting_on(env)
    [intruder] = env.send("signal.wait", {"signal": signal})["runIds"]

    failed = env.wait_status(intruder, "completed", "failed")

    assert failed["status"] == "failed" and failed["error"]["name"] == "SIGNAL_COLLISION"
    assert signal in failed["error"]["message"]
    assert failed["steps"][0]["status"] == "failed" and failed["steps"][0]["error"]["name"] == "SIGNAL_COLLISION"
    assert env.run(holder)["status"] == "waiting"
    assert complete(env, signal, data="for the holder").json() == {"runId": holder}
    assert env.wait_status(holder, "completed")["output"] == {"got": "for the holder"}


def test_a_signal_id_is_free_again_once_resolved(env: WorkflowEnv) -> None:
    first, signal = waiting_on(env)
    complete(env, signal, data=1)
    env.wait_status(first, "completed")

    second, _ = waiting_on(env, signal)

    assert complete(env, signal, data=2).json() == {"runId": second}
    assert env.wait_status(second, "completed")["output"] == {"got": 2}


def test_a_reused_signal_id_whose_new_waiter_was_cancelled_is_404_not_410(env: WorkflowEnv) -> None:
    first, signal = waiting_on(env)
    complete(env, signal, data=1)
    env.wait_status(first, "completed")
    second, _ = waiting_on(env, signal)

    env.http.post(f"/v1/runs/{second}/cancel")

    assert error_code(complete(env, signal, data=2), 404) == "NOT_FOUND"

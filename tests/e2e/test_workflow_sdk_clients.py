"""The SDK's workflow resources on `Rotor` and `AsyncRotor` against a real server: functions, events and triggers,
runs, signals, and the signing key's rotation (an app still on the old key keeps working for 24 hours)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from rotor_lite.sdk import AsyncRotor, Rotor, create_function
from rotor_lite.sdk.errors import RotorAPIError, RotorConflict, RotorNotFound
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, workflow_env
from tests.helpers import ServerProcess

Call = Callable[[Any], Any]


@create_function(id="sdk-approval", trigger={"event": "sdk.approval"}, retries=1)
async def approval(ctx: Context, step: Step) -> Any:
    answer = await step.wait_for_signal("approve", signal=f"sdk-{ctx.run_id}", timeout="1h")
    return {"who": ctx.event.data["who"], "answer": answer}


@pytest.fixture(scope="module")
def env(shared_server: ServerProcess) -> Iterator[WorkflowEnv]:
    for wf_env in workflow_env(shared_server):
        yield wf_env


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest, shared_server: ServerProcess) -> Iterator[tuple[Any, Call]]:
    """(client, call): `call` turns what a method returns into its result (awaiting it on one loop for AsyncRotor)."""
    if request.param == "sync":
        with Rotor(shared_server.api_key, shared_server.url) as rotor:
            yield rotor, lambda value: value
        return
    loop = asyncio.new_event_loop()
    rotor = AsyncRotor(shared_server.api_key, shared_server.url)

    def call(awaitable: Awaitable[Any]) -> Any:
        return loop.run_until_complete(awaitable)

    try:
        yield rotor, call
    finally:
        loop.run_until_complete(rotor.aclose())
        loop.close()


def test_functions_events_runs_and_signals(env: WorkflowEnv, client: tuple[Any, Call]) -> None:
    rotor, call = client
    url = env.serve([approval], register=False)

    registered = call(rotor.functions.register("sdk-approval", serve_url=url, event="sdk.approval", retries=1))

    assert registered["id"] == "sdk-approval" and registered["serve_url"] == url
    assert registered["trigger_type"] == "event" and registered["trigger_event"] == "sdk.approval"
    assert registered["retries"] == 1 and registered["hooks"] == []
    assert call(rotor.functions.get("sdk-approval")) == registered
    assert "sdk-approval" in [fn["id"] for fn in call(rotor.functions.list())["data"]]
    assert call(rotor.functions.signing_key())["signingKey"] == env.signing_key

    [run_id] = call(rotor.send("sdk.approval", {"who": "send"}))["runIds"]
    env.wait_step(run_id, "approve:1", "waiting")
    assert call(rotor.runs.get(run_id))["steps"][0]["signal"] == f"sdk-{run_id}"
    assert call(rotor.signals.complete(f"sdk-{run_id}", {"ok": True}, run_id=run_id)) == {"runId": run_id}
    assert env.wait_status(run_id, "completed")["output"] == {"who": "send", "answer": {"ok": True}}
    completed = call(rotor.runs.list(function="sdk-approval", status="completed"))["data"]
    assert run_id in [run["id"] for run in completed]
    with pytest.raises(RotorAPIError) as gone:
        call(rotor.signals.complete(f"sdk-{run_id}", {"ok": False}))
    assert gone.value.status == 410 and gone.value.code == "GONE"
    with pytest.raises(RotorConflict):
        call(rotor.runs.replay(run_id))

    first = call(rotor.workflow.trigger("sdk.approval", {"who": "trigger"}, idempotency_key=f"key-{run_id}"))
    again = call(rotor.workflow.trigger("sdk.approval", {"who": "again"}, idempotency_key=f"key-{run_id}"))
    assert again["duplicate"] is True and again["runIds"] == first["runIds"]
    [triggered] = first["runIds"]
    env.wait_step(triggered, "approve:1", "waiting")
    assert call(rotor.runs.cancel(triggered))["status"] == "cancelled"
    replay = call(rotor.runs.replay(triggered))
    assert replay["replayOf"] == triggered and replay["status"] == "pending"
    env.wait_step(replay["id"], "approve:1", "waiting")
    assert call(rotor.runs.cancel(replay["id"]))["status"] == "cancelled"

    assert call(rotor.functions.delete("sdk-approval")) is None
    with pytest.raises(RotorNotFound):
        call(rotor.functions.get("sdk-approval"))
    with pytest.raises(RotorNotFound):
        call(rotor.runs.get("run_missing"))


def test_a_rotated_signing_key_still_signs_with_the_old_one_for_a_while(env: WorkflowEnv) -> None:
    with Rotor(env.server.api_key, env.server.url) as rotor:
        old = rotor.functions.signing_key()["signingKey"]
        rotated = rotor.functions.rotate_signing_key()
        assert rotated["signingKey"] != old and rotated["previousSigningKey"] == old
        assert rotated["previousExpiresAt"] is not None
        assert rotor.functions.signing_key()["signingKey"] == rotated["signingKey"]

        env.serve([approval])  # an app still configured with the old key
        [run_id] = rotor.send("sdk.approval", {"who": "old key"})["runIds"]
        env.wait_step(run_id, "approve:1", "waiting")
        env.signing_key = rotated["signingKey"]
        env.serve([approval])  # re-registered at an app with the new key
        rotor.signals.complete(f"sdk-{run_id}", "yes")
        assert env.wait_status(run_id, "completed")["output"] == {"who": "old key", "answer": "yes"}
        rotor.functions.delete("sdk-approval")

"""`step.send_event`: it starts the functions the event triggers and resumes its waiters, once per run even when the
function is retried, and a future `ts` delivers the event at that time; `step.invoke` is not repeated either."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, workflow_env
from tests.helpers import ServerProcess, wait_until


@create_function(id="emitter", trigger={"event": "emit.start"}, retries=1)
async def emitter(ctx: Context, step: Step) -> Any:
    data = ctx.event.data
    sent = await step.send_event("emit", name="emit.heard", data={"tag": data["tag"]}, ts=data.get("ts"))
    child = await step.invoke("child", workflow="listener", data={"tag": data["tag"], "via": "invoke"}, timeout="1m")
    if ctx.attempt == 1:
        raise RuntimeError("fails once after its steps: the retry must not send or invoke again")
    return {"sent": sent, "child": child["runId"]}


@create_function(id="listener", trigger={"event": "emit.heard"})
async def listener(ctx: Context, step: Step) -> Any:
    return {"heard": ctx.event.data, "at": ctx.event.ts}


@create_function(id="emit-waiter", trigger={"event": "emit.wait"})
async def emit_waiter(ctx: Context, step: Step) -> Any:
    tag = ctx.event.data["tag"]
    return await step.wait_for_event("hear", event="emit.heard", match=f'data.tag == "{tag}"', timeout="1h")


@pytest.fixture(scope="module")
def env(shared_server: ServerProcess) -> Iterator[WorkflowEnv]:
    for wf_env in workflow_env(shared_server):
        wf_env.serve([emitter, listener, emit_waiter])
        yield wf_env


def heard(env: WorkflowEnv, tag: str) -> list[dict[str, Any]]:
    runs = env.http.get("/v1/runs", params={"function": "listener", "limit": 200}).json()["data"]
    return [r for r in runs if r["event"]["data"].get("tag") == tag]


def test_an_event_sent_by_a_step_starts_runs_and_resumes_waiters_once(env: WorkflowEnv) -> None:
    tag = uuid.uuid4().hex[:8]
    [waiting] = env.send("emit.wait", {"tag": tag})["runIds"]
    env.wait_step(waiting, "hear:1", "waiting")
    [run_id] = env.send("emit.start", {"tag": tag})["runIds"]

    done = env.wait_status(run_id, "completed", "failed")

    assert done["status"] == "completed" and done["attempt"] == 2
    assert done["output"]["sent"]["id"].startswith("evt_")
    assert env.wait_status(waiting, "completed")["output"] == {"tag": tag}
    runs = heard(env, tag)
    assert sorted(r["event"]["name"] for r in runs) == ["emit.heard", "emit.heard"]  # the sent event and the invoke
    [by_event] = [r for r in runs if r["parentRunId"] is None]
    assert by_event["event"]["id"] == done["output"]["sent"]["id"] and by_event["event"]["data"] == {"tag": tag}
    assert done["childRunIds"] == [done["output"]["child"]]
    send = next(s for s in done["steps"] if s["type"] == "send_event")
    assert send["event"] == "emit.heard" and send["attempts"] <= 1


def test_a_future_ts_delivers_the_event_then(env: WorkflowEnv) -> None:
    tag = uuid.uuid4().hex[:8]
    at = int(time.time() * 1000) + 700
    [run_id] = env.send("emit.start", {"tag": tag, "ts": at})["runIds"]

    [listened] = wait_until(lambda: [r for r in heard(env, tag) if r["parentRunId"] is None])

    assert datetime.fromisoformat(listened["createdAt"]).timestamp() * 1000 >= at
    assert env.wait_status(run_id, "completed")["output"]["sent"]["id"] == listened["event"]["id"]
    assert env.wait_status(listened["id"], "completed")["output"]["heard"] == {"tag": tag}

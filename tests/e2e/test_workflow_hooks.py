"""Lifecycle hooks with the reference's semantics: `on_success` once after retries, `on_failure` only when the
retries are used up, `on_cancel` only for a run that had started, and a raising hook never changes the status."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.errors import WorkflowError
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, workflow_env
from tests.helpers import ServerProcess, db_execute, wait_until

attempts: Counter[str] = Counter()
hook_calls: list[dict[str, Any]] = []
blocking, release = threading.Event(), threading.Event()


async def on_success(ctx: Context, result: Any) -> None:
    hook_calls.append({"hook": "on_success", "run": ctx.run_id, "result": result, "attempts": attempts[ctx.run_id]})


async def on_failure(ctx: Context, error: WorkflowError) -> None:
    hook_calls.append({"hook": "on_failure", "run": ctx.run_id, "error": (error.name, error.message),
                       "attempts": attempts[ctx.run_id]})


async def on_cancel(ctx: Context) -> None:
    hook_calls.append({"hook": "on_cancel", "run": ctx.run_id})


async def broken_hook(ctx: Context, result: Any) -> None:
    raise RuntimeError(f"the receipt for {ctx.run_id} could not be mailed")


def flaky(run_id: str, fail_times: int) -> int:
    attempts[run_id] += 1
    if attempts[run_id] <= fail_times:
        raise RuntimeError(f"attempt {attempts[run_id]} failed")
    return attempts[run_id]


@create_function(id="hooked-step", trigger={"event": "hooked.step"}, retries=2, on_success=on_success,
                 on_failure=on_failure, on_cancel=on_cancel)
async def hooked_step(ctx: Context, step: Step) -> Any:
    """A step that fails `data.fail` times before it succeeds."""
    return {"attempt": await step.run("flaky", flaky, ctx.run_id, ctx.event.data["fail"])}


@create_function(id="hooked-body", trigger={"event": "hooked.body"}, retries=2, on_success=on_success,
                 on_failure=on_failure, on_cancel=on_cancel)
async def hooked_body(ctx: Context, step: Step) -> Any:
    """The function itself fails `data.fail` times (each call is an attempt) before it returns."""
    return {"attempt": flaky(ctx.run_id, ctx.event.data["fail"])}


def block_until_released() -> str:
    blocking.set()
    release.wait(30)
    return "released"


@create_function(id="hooked-gated", trigger={"event": "hooked.gated"}, concurrency=1, on_cancel=on_cancel)
async def hooked_gated(ctx: Context, step: Step) -> Any:
    if ctx.event.data.get("block"):
        await step.run("block", block_until_released)
    return await step.wait_for_signal("gate", signal=f"hooked-{ctx.run_id}", timeout="1h")


@create_function(id="hooked-broken", trigger={"event": "hooked.broken"}, on_success=broken_hook)
async def hooked_broken(ctx: Context, step: Step) -> Any:
    return {"done": True}


@pytest.fixture(scope="module")
def env(shared_server: ServerProcess) -> Iterator[WorkflowEnv]:
    for wf_env in workflow_env(shared_server):
        wf_env.serve([hooked_step, hooked_body, hooked_gated, hooked_broken])
        yield wf_env
        release.set()


def calls_for(run_id: str) -> list[dict[str, Any]]:
    return [call for call in hook_calls if call["run"] == run_id]


def hook_steps(env: WorkflowEnv, run_id: str) -> list[tuple[str, str]]:
    """The run's hook calls as the server recorded them: (hook, status) — the API does not list them as steps."""
    rows = db_execute(
        env.server.data_dir,
        "SELECT s.name, s.status FROM run_step s JOIN run r ON r.rowid = s.run_rowid WHERE r.id = ? AND s.type = 'hook'"
        " ORDER BY s.rowid",
        (run_id,),
    )
    return [(row[0], row[1]) for row in rows]


def settled_hooks(env: WorkflowEnv, run_id: str) -> list[tuple[str, str]]:
    """The run's hook calls once none is scheduled or in flight."""
    return list(wait_until(lambda: (found := hook_steps(env, run_id)) and all(s in ("completed", "failed") for _, s in found)
                           and found))


@pytest.mark.parametrize("event", ["hooked.step", "hooked.body"])
def test_on_success_fires_once_after_a_run_that_failed_twice_then_succeeded(env: WorkflowEnv, event: str) -> None:
    [run_id] = env.send(event, {"fail": 2})["runIds"]

    done = env.wait_status(run_id, "completed", "failed")

    assert done["status"] == "completed" and done["output"] == {"attempt": 3}
    assert settled_hooks(env, run_id) == [("on_success", "completed")]
    assert calls_for(run_id) == [{"hook": "on_success", "run": run_id, "result": {"attempt": 3}, "attempts": 3}]
    assert done["hookErrors"] == []


@pytest.mark.parametrize("event", ["hooked.step", "hooked.body"])
def test_on_failure_fires_once_only_after_the_retries_are_used_up(env: WorkflowEnv, event: str) -> None:
    [run_id] = env.send(event, {"fail": 99})["runIds"]

    done = env.wait_status(run_id, "completed", "failed")

    assert done["status"] == "failed" and done["error"] == {"name": "RuntimeError", "message": "attempt 3 failed"}
    assert settled_hooks(env, run_id) == [("on_failure", "completed")]
    [call] = calls_for(run_id)
    assert call["hook"] == "on_failure" and call["attempts"] == 3  # retries=2: three attempts, then the hook
    assert call["error"] == ("RuntimeError", "attempt 3 failed")
    assert attempts[run_id] == 3


def test_on_cancel_fires_for_a_started_run_and_not_for_a_pending_one(env: WorkflowEnv) -> None:
    blocking.clear(), release.clear()
    [blocker] = env.send("hooked.gated", {"block": True})["runIds"]
    assert blocking.wait(15)
    [queued] = env.send("hooked.gated", {})["runIds"]  # concurrency 1: not called while the blocker's call runs
    assert env.run(queued)["status"] == "pending"

    cancelled = env.http.post(f"/v1/runs/{queued}/cancel").json()

    assert cancelled["status"] == "cancelled" and cancelled["startedAt"] is None
    release.set()
    env.wait_step(blocker, "gate:1", "waiting")
    assert env.http.post(f"/v1/runs/{blocker}/cancel").json()["status"] == "cancelled"
    assert settled_hooks(env, blocker) == [("on_cancel", "completed")]
    assert calls_for(blocker) == [{"hook": "on_cancel", "run": blocker}]
    assert hook_steps(env, queued) == [] and calls_for(queued) == []


def test_a_hook_that_raises_is_recorded_and_changes_no_status(env: WorkflowEnv) -> None:
    [run_id] = env.send("hooked.broken", {})["runIds"]

    env.wait_status(run_id, "completed")
    assert settled_hooks(env, run_id) == [("on_success", "failed")]

    run = env.run(run_id)
    assert run["status"] == "completed" and run["output"] == {"done": True}
    [entry] = run["hookErrors"]
    assert entry["hook"] == "on_success" and entry["name"] == "RuntimeError"
    assert entry["message"] == f"the receipt for {run_id} could not be mailed"
    audit = env.http.get("/v1/audit", params={"event_type": "workflow.hook.errored"}).json()["data"]
    [event] = [e for e in audit if e["resource_id"] == run_id]
    assert event["resource_type"] == "run" and event["metadata"]["hook"] == "on_success"
    assert "could not be mailed" in event["metadata"]["error"]

"""The tools of `/mcp` (Streamable HTTP): the 12 workflow-led tools of Rotor's MCP v2 and `approve_job`.

Workflows are the functions registered with `/v1/functions`; triggering one sends its trigger
event, and its runs are how it is observed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

import anyio
import msgspec

from rotor_lite import errors
from rotor_lite.mcp.tools import CONFIRM, CURSOR, LIMIT, Call, Tool, arguments, param, rest
from rotor_lite.mcp.workspace import QUEUE_STATES, WORKSPACE_TOOLS, set_queue_state
from rotor_lite.schemas import QueueCreate, ScheduleCreate, ScheduleUpdate
from rotor_lite.sdk import AsyncRotor, RotorConflict, RotorNotFound
from rotor_lite.sdk._request import compact, path

__all__ = ["WORKFLOW_TOOLS"]

RUN_ID = {"run_id": param(str, "The run's id (run_…).")}
RUN_STATUS = Literal["pending", "running", "sleeping", "waiting", "completed", "failed", "cancelled"]
_ENDED = {"completed", "failed", "cancelled"}
_POLL_FIRST, _POLL_MOST = 0.05, 1.0  # seconds between looks at a run invoke_workflow waits for
MAX_INVOKE_SECONDS = 600
_TRIGGER = {
    "workflow": param(str, "The workflow function's id (see list_workflows)."),
    "data": param(Any, "The trigger event's data, handed to the run as ctx.event.data.", {}),
    "idempotency_key": param(str | None, "A key already used for this workflow starts no second run.", None),
}
_DECISION = param(Literal["approve", "reject"], "approve (the default) or reject.", "approve")
_REASON = param(str | None, "Why (kept with a rejection).", None)
_JOB_REF = {
    "approval_id": param(str | None, "The approval's id (apv_…).", None),
    "queue": param(str | None, "With job_id: the queue of the job awaiting approval.", None),
    "job_id": param(str | None, "With queue: the job awaiting approval, instead of approval_id.", None),
}


class RunNotCompleted(errors.RotorError):
    """invoke_workflow's run failed, was cancelled, or had not ended when the timeout came."""

    def __init__(self, code: str, message: str, run: dict[str, Any]) -> None:
        super().__init__(message, {"run_id": run["id"], "status": run["status"], "error": run.get("error")})
        self.code = code


async def trigger_workflow(client: AsyncRotor, call: Call[Any]) -> dict[str, Any]:
    """Send the workflow's trigger event: `{run_id, event_id, run_ids}` (`run_ids`: every run it started)."""
    function = await client.functions.get(call.args.workflow)
    if function["trigger_type"] != "event":
        raise errors.ValidationError(
            f"workflow '{call.args.workflow}' runs on its cron schedule; only event-triggered workflows can be "
            "triggered", field="workflow",
        )
    sent = await client.send(function["trigger_event"], call.args.data, idempotency_key=call.args.idempotency_key)
    run_id = await _run_of(client, sent["runIds"], call.args.workflow)
    return compact({"run_id": run_id, "event_id": sent.get("id"), "run_ids": sent["runIds"],
                    "duplicate": sent.get("duplicate")})


async def _run_of(client: AsyncRotor, run_ids: list[str], workflow: str) -> str | None:
    """Which of the runs an event started is `workflow`'s (other functions may listen to the same event)."""
    if len(run_ids) <= 1:
        return run_ids[0] if run_ids else None
    for run_id in run_ids:
        if (await client.runs.get(run_id))["functionId"] == workflow:
            return run_id
    return None


async def invoke_workflow(client: AsyncRotor, call: Call[Any]) -> dict[str, Any]:
    """Trigger, then wait up to `timeout` seconds for the run's end: its output, or a tool error."""
    started = await trigger_workflow(client, call)
    if started.get("run_id") is None:
        raise errors.Conflict(f"the event started no run of workflow '{call.args.workflow}'", started)
    run = await _run_at_end(client, started["run_id"], call.args.timeout)
    if run["status"] == "completed":
        return {"run_id": run["id"], "status": "completed", "output": run.get("output")}
    if run["status"] in _ENDED:
        raise RunNotCompleted(f"RUN_{run['status'].upper()}", f"run {run['id']} {run['status']}", run)
    raise RunNotCompleted("TIMEOUT", f"run {run['id']} is still {run['status']} after {call.args.timeout} s: "
                                     "follow it with get_run", run)


async def _run_at_end(client: AsyncRotor, run_id: str, timeout: float) -> dict[str, Any]:
    """The run once it has ended, or as it is when `timeout` seconds have passed."""
    delay = _POLL_FIRST
    with anyio.move_on_after(timeout):
        while (run := await client.runs.get(run_id))["status"] not in _ENDED:
            await anyio.sleep(delay)
            delay = min(delay * 2, _POLL_MOST)
        return dict(run)
    return dict(await client.runs.get(run_id))


async def list_runs(client: AsyncRotor, call: Call[Any]) -> dict[str, Any]:
    a = call.args
    page = await client.runs.list(function=a.workflow, status=a.status, since=a.since, until=a.until, limit=a.limit,
                                  cursor=a.cursor)
    return {"runs": page["data"], "nextCursor": page.get("nextCursor")}


async def upsert_queue(client: AsyncRotor, call: Call[Any]) -> Any:
    """Create the queue, or when its name is taken change the settings given."""
    try:
        return await client.request("POST", "/v1/queues", json=call.given)
    except RotorConflict:
        changes = {key: value for key, value in call.given.items() if key != "name"}
        return await client.request("PATCH", path("/v1/queues/{}", call.args.name), json=changes)


async def set_queue_state_or_drain(client: AsyncRotor, call: Call[Any]) -> Any:
    if call.args.state != "drain":
        return await set_queue_state(client, call)
    if call.args.confirm is not True:
        raise errors.ValidationError("draining cancels the queue's waiting and delayed jobs: call again with "
                                     "confirm: true once the user has agreed", field="confirm")
    return await client.queues.drain(call.args.name)


async def upsert_schedule(client: AsyncRotor, call: Call[Any]) -> Any:
    """Create the schedule named `name`, or change the one that exists (not its queue)."""
    try:
        current = await client.schedules.get(call.args.name)
    except RotorNotFound:
        return await client.request("POST", "/v1/schedules", json=call.given)
    queue = call.args.queue or call.args.queue_name
    if queue is not None and queue != current["queue"]:
        raise errors.Conflict(f"schedule '{call.args.name}' enqueues on queue '{current['queue']}'; delete it to "
                              f"move it to '{queue}'", {"queue": current["queue"]})
    changes = {key: value for key, value in call.given.items() if key in ScheduleUpdate.__struct_fields__}
    return await client.request("PATCH", path("/v1/schedules/{}", current["id"]), json=changes)


async def approve_run(client: AsyncRotor, call: Call[Any]) -> Any:
    """Complete a run's approval signal with `{approved, reason}` (or `data`), or decide a job's approval."""
    a = call.args
    if a.approval_id is not None or a.job_id is not None:
        return await _decide_job(client, a)
    if a.signal_id is None and a.run_id is None:
        raise errors.ValidationError("name the run (run_id), its signal (signal_id), or a job's approval "
                                     "(approval_id, or queue and job_id)", field="run_id")
    signal = a.signal_id or await _waiting_signal(client, a.run_id)
    data = a.data if "data" in call.given else compact({"approved": a.action == "approve", "reason": a.reason})
    done = await client.signals.complete(signal, data, run_id=a.run_id)
    return {"runId": done["runId"], "signal": signal, "data": data}


async def _waiting_signal(client: AsyncRotor, run_id: str) -> str:
    run = await client.runs.get(run_id)
    waiting = [step["signal"] for step in run.get("steps") or []
               if step["type"] == "wait_for_signal" and step["status"] == "waiting"]
    if len(waiting) != 1:
        found = "no signal" if not waiting else f"{len(waiting)} signals ({', '.join(waiting)}): name one as signal_id"
        raise errors.Conflict(f"run {run_id} is waiting for {found}", {"runId": run_id, "status": run["status"]})
    return str(waiting[0])


async def approve_job(client: AsyncRotor, call: Call[Any]) -> Any:
    """List pending approvals, or approve or reject one (by approval id, or by queue and job id)."""
    a = call.args
    if a.action == "list":
        page = await client.approvals.list(status="pending", queue=a.queue, limit=a.limit, cursor=a.cursor)
        return dict(page)
    return await _decide_job(client, a)


async def _decide_job(client: AsyncRotor, a: Any) -> Any:
    approval_id = a.approval_id
    if approval_id is None:
        if a.queue is None or a.job_id is None:
            raise errors.ValidationError("name the approval (approval_id) or the job (queue and job_id)",
                                         field="approval_id")
        job = await client.jobs.get(a.queue, a.job_id)
        if job.get("approvalId") is None:
            raise errors.Conflict(f"job {a.job_id} has no approval", {"jobId": a.job_id, "state": job["state"]})
        approval_id = job["approvalId"]
    if a.action == "reject":
        return await client.approvals.reject(approval_id, a.reason)
    return await client.approvals.approve(approval_id)


def _named(tool_name: str, as_name: str) -> Tool:
    return replace(next(tool for tool in WORKSPACE_TOOLS if tool.name == tool_name), name=as_name)


WORKFLOW_TOOLS: list[Tool] = [
    rest("list_workflows", "List the workspace's workflow functions: id, trigger (event or cron), serve URL, "
         "retries. Changes nothing.", "GET", "/v1/functions", query={"limit": LIMIT, "cursor": CURSOR},
         wrap="workflows"),
    Tool("trigger_workflow", "Start a workflow: sends its trigger event with data (fire and forget; other "
         "workflows listening to that event start too). Answers {run_id, event_id, run_ids}.",
         arguments("trigger_workflow", **_TRIGGER), trigger_workflow),
    Tool("invoke_workflow", "Start a workflow and wait (at most timeout seconds) for its run to end. Answers "
         "{run_id, status, output}; a failed or cancelled run, or one still going at the timeout, is a tool error "
         "with its run_id.",
         arguments("invoke_workflow", **_TRIGGER, timeout=param(
             Annotated[float, msgspec.Meta(gt=0, le=MAX_INVOKE_SECONDS)],
             f"Seconds to wait for the run's end (at most {MAX_INVOKE_SECONDS}).", 60.0)),
         invoke_workflow),
    rest("get_run", "Show a run: status, trigger event, output or error, and its step graph (each step's type, "
         "status, attempts, timing, output preview, signal or child run). Changes nothing.",
         "GET", "/v1/runs/{run_id}", ids=RUN_ID),
    Tool("list_runs", "List runs, newest first, filtered by workflow, status and creation time. Changes nothing.",
         arguments("list_runs", workflow=param(str | None, "Only this workflow's runs.", None),
                   status=param(RUN_STATUS | None, "Only runs in this status.", None),
                   since=param(str | None, "Only runs created at or after this ISO 8601 time.", None),
                   until=param(str | None, "Only runs created before this ISO 8601 time.", None),
                   limit=LIMIT, cursor=CURSOR),
         list_runs, read_only=True),
    rest("cancel_run", "Cancel a run and its child runs: steps in flight finish, later steps are skipped. A run "
         "that has already ended is answered unchanged.", "POST", "/v1/runs/{run_id}/cancel", ids=RUN_ID),
    Tool("upsert_queue", "Create a queue, or change the given settings of the queue with that name "
         "(concurrency, retry_attempts, callback_url, approval_required, …). Answers the queue.",
         arguments("upsert_queue", QueueCreate), upsert_queue),
    Tool("set_queue_state", "Pause a queue (accepts jobs, dispatches none), resume it, or drain it (state drain "
         "cancels its waiting and delayed jobs: DESTRUCTIVE, needs confirm: true).",
         arguments("set_queue_state", name=param(str, "The queue's name."), state=param(
             QUEUE_STATES | Literal["drain"], "paused/pause, active/resume, or drain."), confirm=CONFIRM),
         set_queue_state_or_drain),
    _named("rotor_drain_queue", "drain_queue"),
    rest("queue_stats", "Job counts per state of one queue. Changes nothing.", "GET", "/v1/queues/{name}/stats"),
    Tool("upsert_schedule", "Create the cron schedule named name on a queue, or change the cron, timezone, "
         "payload or enabled flag of the one with that name. Answers the schedule.",
         arguments("upsert_schedule", ScheduleCreate, name=param(str, "The schedule's name (its key here).")),
         upsert_schedule),
    Tool("approve_run", "Approve or reject a pending approval: a run waiting in step.wait_for_signal (run_id, "
         "or signal_id such as approval-<run id>) resumes with data {approved, reason}; or a job of a queue "
         "requiring approval (approval_id, or queue and job_id) is released or rejected.",
         arguments("approve_run", run_id=param(str | None, "The run waiting for approval.", None),
                   signal_id=param(str | None, "The signal it waits for (default: the run's waiting signal).",
                                   None),
                   action=_DECISION, reason=_REASON,
                   data=param(Any, "The signal's data, instead of {approved, reason}.", None), **_JOB_REF),
         approve_run),
    Tool("approve_job", "Review jobs of queues that require approval: action list shows the pending approvals "
         "(optionally of one queue) with their payloads; approve releases a job to run; reject fails it for good "
         "(with a reason).",
         arguments("approve_job", action=param(Literal["list", "approve", "reject"], "list, approve or reject.",
                                               "approve"),
                   reason=_REASON, limit=LIMIT, cursor=CURSOR, **_JOB_REF),
         approve_job),
]

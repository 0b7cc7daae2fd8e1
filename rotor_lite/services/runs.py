"""Run operations: start, end, cancel, replay, read and list.

The writer-side functions (`start_run`, `finish`, `cancel`) run inside the caller's transaction:
the event path, the run driver, the schedules engine and the API all start and end runs through
them, so a run's side effects (its parent's step, its hooks, its webhook, its metrics) happen in
one place.
"""

from __future__ import annotations

from typing import Any

import msgspec

from rotor_lite.clock import iso_from_ms
from rotor_lite.errors import Conflict, NotFound
from rotor_lite.ids import new_id
from rotor_lite.models import RUN_TERMINAL, Function, Principal, Run, RunStatus, Step, StepStatus, StepType
from rotor_lite.protocol import error_json
from rotor_lite.schemas import EventOut, RunError, RunOut, StepOut
from rotor_lite.services.core import Core, billing_period
from rotor_lite.services.paging import decode_cursor, encode_cursor
from rotor_lite.store import jobs as job_store
from rotor_lite.store import runs as store
from rotor_lite.store.contract import Conn

__all__ = [
    "NewEvent", "RunNotFound", "cancel", "cancel_run", "fail_broken", "finish", "get_run", "list_runs", "replay_run", "run_out",
    "run_with_steps", "start_run", "usage_key",
]

OUTPUT_PREVIEW_BYTES = 4096
_EVENT_OF_STATUS = {RunStatus.COMPLETED: "run.completed", RunStatus.FAILED: "run.failed", RunStatus.CANCELLED: "run.cancelled"}
_HOOK_OF_STATUS = {RunStatus.COMPLETED: "on_success", RunStatus.FAILED: "on_failure", RunStatus.CANCELLED: "on_cancel"}
_PARENT_ERROR = {RunStatus.FAILED: "WorkflowFailedError", RunStatus.CANCELLED: "WorkflowCancelledError"}


class RunNotFound(NotFound):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"run '{run_id}' not found", {"runId": run_id})


class NewEvent(msgspec.Struct, kw_only=True, frozen=True):
    """The event a run starts from."""

    id: str
    name: str
    data: bytes
    ts: int


def usage_key(function_id: str) -> str:
    """Runs count against the monthly quota like jobs; usage lists them under this name."""
    return f"fn:{function_id}"


# Writer side -----------------------------------------------------------------------------


def start_run(
    core: Core, conn: Conn, fn: Function, event: NewEvent, *, idempotency_key: str | None = None,
    parent: tuple[str, int] | None = None, schedule_id: str | None = None, replay_of: Run | None = None,
) -> Run:
    """A new pending run of `fn`, due for its first call now; counts against the quota (may raise QuotaExceeded)."""
    now = core.clock.now_ms()
    period = billing_period(now)
    core.quota.reserve(conn, fn.workspace_id, period, 1)
    job_store.add_usage(conn, fn.workspace_id, period, usage_key(fn.id), 1)
    run = Run(
        rowid=0, id=new_id("run", now), workspace_id=fn.workspace_id, function_id=fn.id, status=RunStatus.PENDING,
        event_id=event.id, event_name=event.name, event_data=event.data, event_ts=event.ts, attempt=1, output=None,
        error=None, parent_run_id=parent[0] if parent else None, parent_step_rowid=parent[1] if parent else None,
        idempotency_key=idempotency_key, replay_of=replay_of.id if replay_of else None, schedule_id=schedule_id,
        hook_errors=None, created_at=now, started_at=None, ended_at=None,
    )
    run.rowid = store.insert_run(conn, run, due_at=now)
    if replay_of is not None:
        store.copy_completed_steps(conn, replay_of.rowid, run.rowid)
    core.metrics.runs_started.labels(fn.workspace_id, fn.id).inc()
    core.workflows.on_ready()
    return run


def finish(
    core: Core, conn: Conn, run: Run, status: RunStatus, *, output: bytes | None = None,
    error: tuple[str, str] | None = None,
) -> bool:
    """End an open run: completed, failed or cancelled; False if it had already ended."""
    now = core.clock.now_ms()
    error_text = None if error is None else error_json(*error)
    if not store.finish_run(conn, run.rowid, status, now, output=output, error=error_text):
        return False
    # A function may return before awaiting a step it started: nothing of an ended run stays open.
    store.cancel_open_steps(conn, run.rowid, now)
    store.delete_waiters_of_run(conn, run.rowid)
    _tell_parent(core, conn, run, status, output, error, now)
    _schedule_hook(core, conn, run, status, now)
    _emit(core, conn, run, status, output, error_text, now)
    core.metrics.runs_finished.labels(run.workspace_id, run.function_id, status.value).inc()
    return True


def fail_broken(core: Core, conn: Conn, run_rowid: int, reason: str) -> None:
    """A run whose progress could not be recorded (a bug) fails, so it cannot come back again and again."""
    store.release_all_leases(conn, run_rowid)
    run = store.run_row(conn, run_rowid)
    if run is not None:
        finish(core, conn, run, RunStatus.FAILED, error=("InternalError", reason))


def cancel(core: Core, conn: Conn, run: Run) -> bool:
    """Cancel an open run and, recursively, its open children; steps in flight finish, the rest are skipped."""
    if not finish(core, conn, run, RunStatus.CANCELLED, error=("WorkflowCancelledError", "the run was cancelled")):
        return False
    for child_rowid in store.open_children(conn, run.id):
        child = store.run_row(conn, child_rowid)
        if child is not None:
            cancel(core, conn, child)
    return True


def _tell_parent(
    core: Core, conn: Conn, run: Run, status: RunStatus, output: bytes | None,
    error: tuple[str, str] | None, now: int,
) -> None:
    """A child run of a `step.invoke` ends its parent's step (unless it already timed out)."""
    if run.parent_step_rowid is None:
        return
    if status == RunStatus.COMPLETED:
        result = b'{"result":' + (output or b"null") + b',"runId":' + msgspec.json.encode(run.id) + b"}"
        ended = store.end_step(conn, run.parent_step_rowid, StepStatus.COMPLETED, now, output=result)
    else:
        message = error[1] if error else status.value
        text = error_json(_PARENT_ERROR[status], f"run {run.id} of '{run.function_id}' {status.value}: {message}")
        ended = store.end_step(conn, run.parent_step_rowid, StepStatus.FAILED, now, error=text)
    if ended:
        step = store.step_row(conn, run.parent_step_rowid)
        if step is not None:
            continue_run(core, conn, step.run_rowid)


def _schedule_hook(core: Core, conn: Conn, run: Run, status: RunStatus, now: int) -> None:
    fn = core.workflows.function(run.workspace_id, run.function_id)
    hook = _HOOK_OF_STATUS[status]
    if fn is None or hook not in fn.hooks:
        return
    if status == RunStatus.CANCELLED and run.started_at is None:
        return  # on_cancel is for runs that had started
    store.insert_step(conn, Step(
        rowid=0, run_rowid=run.rowid, key=f"hook:{hook}", name=hook, type=StepType.HOOK, status=StepStatus.SCHEDULED,
        attempts=0, output=None, error=None, child_run_id=None, signal=None, event_name=None, started_at=None,
        ended_at=None, due_at=now,
    ))
    core.workflows.on_ready()


def _emit(
    core: Core, conn: Conn, run: Run, status: RunStatus, output: bytes | None, error_text: str | None,
    now: int,
) -> None:
    event_type = _EVENT_OF_STATUS[status]
    if not core.events.wants(run.workspace_id, event_type):
        return
    data: dict[str, Any] = {"runId": run.id, "functionId": run.function_id, "status": status.value, "endedAt": iso_from_ms(now)}
    if status == RunStatus.COMPLETED:
        data["output"] = msgspec.Raw(output or b"null")
    else:
        data["error"] = msgspec.Raw(error_text.encode()) if error_text else None
    core.events.emit(conn, run.workspace_id, event_type, data)


def continue_run(core: Core, conn: Conn, run_rowid: int) -> None:
    """Something the run waited on ended: call its function body again once its step calls are done."""
    if not store.has_step_calls(conn, run_rowid):
        store.set_due(conn, run_rowid, core.clock.now_ms())
        core.workflows.on_ready()
    refresh_status(conn, run_rowid)


def refresh_status(conn: Conn, run_rowid: int) -> None:
    """An open run's status from what it is doing: called, sleeping, waiting."""
    state = store.run_state(conn, run_rowid)
    if state is None or state.status in RUN_TERMINAL:
        return
    open_steps = store.open_step_statuses(conn, run_rowid)
    if state.due_or_leased or open_steps & {StepStatus.SCHEDULED, StepStatus.RUNNING}:
        status = RunStatus.RUNNING if state.started else RunStatus.PENDING
    elif StepStatus.WAITING in open_steps:
        status = RunStatus.WAITING
    elif StepStatus.SLEEPING in open_steps:
        status = RunStatus.SLEEPING
    else:
        status = RunStatus.RUNNING
    if status != state.status:
        store.set_status(conn, run_rowid, status)


# API side ---------------------------------------------------------------------------------


async def get_run(core: Core, principal: Principal, run_id: str) -> Run:
    run = await store.fetch_run(core.db, principal.workspace_id, run_id)
    if run is None:
        raise RunNotFound(run_id)
    return run


async def run_with_steps(core: Core, principal: Principal, run_id: str) -> tuple[Run, list[Step], list[str]]:
    """The run, its steps in the order they were started, and the ids of the runs it invoked."""
    run = await get_run(core, principal, run_id)
    return run, await store.fetch_steps(core.db, run.rowid), await store.fetch_children(core.db, run.id)


async def list_runs(
    core: Core, principal: Principal, *, function_id: str | None, status: str | None, since: int | None,
    until: int | None, limit: int, cursor: str | None,
) -> tuple[list[Run], str | None]:
    found = await store.list_runs(
        core.db, principal.workspace_id, function_id=function_id, status=status, since=since, until=until,
        before_rowid=decode_cursor(cursor), limit=limit + 1,
    )
    page = found[:limit]
    return page, encode_cursor(page[-1].rowid) if len(found) > limit else None


async def cancel_run(core: Core, principal: Principal, run_id: str) -> Run:
    """Cancel the run (idempotent: an ended run is returned as it is)."""
    run = await get_run(core, principal, run_id)

    def write(conn: Conn) -> Run:
        current = store.run_row(conn, run.rowid)
        assert current is not None
        cancel(core, conn, current)
        ended = store.run_row(conn, run.rowid)
        assert ended is not None
        return ended

    return await core.db.write(write)


async def replay_run(core: Core, principal: Principal, run_id: str) -> Run:
    """A failed or cancelled run starts again as a new run that keeps the outcomes of its completed steps."""
    run = await get_run(core, principal, run_id)
    if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
        raise Conflict(f"only a failed or cancelled run can be replayed (this one is {run.status.value})", {"status": run.status.value})
    fn = core.workflows.function(run.workspace_id, run.function_id)
    if fn is None:
        raise NotFound(f"function '{run.function_id}' no longer exists", {"functionId": run.function_id})
    event = NewEvent(id=run.event_id, name=run.event_name, data=run.event_data, ts=run.event_ts)
    try:
        return await core.db.write(lambda conn: start_run(core, conn, fn, event, replay_of=run))
    except Exception:
        core.quota.forget()
        raise


# Rendering ----------------------------------------------------------------------------------


def run_out(run: Run, steps: list[Step] | None = None, children: list[str] | None = None) -> RunOut:
    """The API's run object; with `steps` (and children), the full one `GET /v1/runs/:id` shows."""
    out = RunOut(
        id=run.id, functionId=run.function_id, status=run.status.value,
        event=EventOut(id=run.event_id, name=run.event_name, data=msgspec.Raw(run.event_data), ts=run.event_ts),
        attempt=run.attempt, output=None if run.output is None else msgspec.Raw(run.output), error=_error(run.error),
        parentRunId=run.parent_run_id, createdAt=iso_from_ms(run.created_at) or "", startedAt=iso_from_ms(run.started_at),
        endedAt=iso_from_ms(run.ended_at), replayOf=run.replay_of,
    )
    if steps is not None:
        out.steps = [_step_out(step) for step in steps if step.type != StepType.HOOK]
        out.childRunIds = children or []
        out.hookErrors = msgspec.json.decode(run.hook_errors) if run.hook_errors else []
    return out


def _step_out(step: Step) -> StepOut:
    waiting = step.status in (StepStatus.SLEEPING, StepStatus.WAITING)
    return StepOut(
        id=step.key, name=step.name, type=step.type.value, status=step.status.value, attempts=step.attempts,
        startedAt=iso_from_ms(step.started_at), endedAt=iso_from_ms(step.ended_at),
        wakeAt=iso_from_ms(step.due_at) if waiting else None, output=_preview(step.output),
        error=_error(step.error), childRunId=step.child_run_id, signal=step.signal, event=step.event_name,
    )


def _preview(output: bytes | None) -> Any:
    """A step's output, or the start of it as text when it is larger than the preview (4 KiB)."""
    if output is None:
        return None
    if len(output) <= OUTPUT_PREVIEW_BYTES:
        return msgspec.Raw(output)
    return output[:OUTPUT_PREVIEW_BYTES].decode("utf-8", "ignore") + "…"


def _error(text: str | None) -> RunError | None:
    return None if text is None else msgspec.json.decode(text, type=RunError)

"""How runs move: what a serve URL's answer does to a run, and what time does (wake-ups, timeouts).

Every function here runs on the writer thread, inside the run driver's operation, so a step's
outcome is committed before any call that could run a later step is made.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from rotor_lite import cel_match
from rotor_lite.backoff import backoff_ms
from rotor_lite.ids import new_id
from rotor_lite.models import BackoffType, Run, RunCall, RunStatus, Step, StepStatus, StepType
from rotor_lite.protocol import (
    OPTS_TYPES, Answer, CallResult, Complete, ErrorInfo, EventWaitOpts, Failure, HookDone, InvokeOpts, Plan, PlannedStep,
    SendEventOpts, SignalOpts, SleepOpts, StepDone, Waiting, error_json,
)
from rotor_lite.schemas import EVENT_NAME
from rotor_lite.services import audit
from rotor_lite.services import runs as run_service
from rotor_lite.services.core import Core
from rotor_lite.services.workflow_events import publish, valid_event_name
from rotor_lite.services.runs import NewEvent, continue_run, refresh_status
from rotor_lite.store import runs as store
from rotor_lite.store.db import savepoint
from rotor_lite.store.contract import Conn

log = logging.getLogger("rotor_lite.workflows")

MAX_STEPS = 1000
MAX_OUTPUT_BYTES = 4 * 1024 * 1024
MAX_INVOKE_TIMEOUT_MS = 24 * 3600 * 1000
HOOK_SOFT_TIMEOUT_MS = 30_000


class _StepFailure(Exception):
    """A planned step that cannot be carried out: it fails at once with this error."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name, self.message = name, message


# Answers -------------------------------------------------------------------------------------


def apply_result(core: Core, conn: Conn, call: RunCall, result: CallResult) -> None:
    """Record how one call ended; a call whose lease no longer held changes nothing."""
    if call.step_rowid is None:
        if store.release_run(conn, call):
            _apply_body_result(core, conn, call, result)
    elif store.release_step(conn, call):
        if call.hook is not None:
            _apply_hook_result(core, conn, call, result)
        else:
            _apply_step_result(core, conn, call, result)
    refresh_status(conn, call.run_rowid)


def _apply_body_result(core: Core, conn: Conn, call: RunCall, result: CallResult) -> None:
    run = store.run_row(conn, call.run_rowid)
    assert run is not None
    answer = result.answer
    if run.status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED):
        if isinstance(answer, StepDone):  # a step in flight at the cancel still finishes
            _record_inline_step(core, conn, run, answer)
        return
    if answer is None:
        _body_failed(core, conn, run, ErrorInfo(name="CallFailed", message=result.failure or "the call failed"), True)
    else:
        _apply_body_answer(core, conn, run, answer)


def _apply_body_answer(core: Core, conn: Conn, run: Run, answer: Answer) -> None:
    if isinstance(answer, Complete):
        _complete(core, conn, run, answer.output)
    elif isinstance(answer, Failure):
        _body_failed(core, conn, run, answer.error, answer.retriable)
    elif isinstance(answer, StepDone):
        saved = _record_inline_step(core, conn, run, answer, carry_on=answer.then is None)
        if saved and answer.then is not None:  # what the function did next with the output: no call needed
            _apply_body_answer(core, conn, run, answer.then)
    elif isinstance(answer, Plan):
        _apply_plan(core, conn, run, answer)
    elif not isinstance(answer, Waiting):
        _body_failed(core, conn, run, ErrorInfo(name="ProtocolError", message=f"unexpected answer '{type(answer).__name__}' to a run call"), True)


def _complete(core: Core, conn: Conn, run: Run, output: Any) -> None:
    try:
        encoded = _encoded_output(output)
    except _StepFailure as exc:
        run_service.finish(core, conn, run, RunStatus.FAILED, error=(exc.name, exc.message))
        return
    run_service.finish(core, conn, run, RunStatus.COMPLETED, output=encoded)


def _body_failed(core: Core, conn: Conn, run: Run, error: ErrorInfo, retriable: bool) -> None:
    """The function body raised (or its call failed): try it again within the retries, else the run fails."""
    fn = core.workflows.function(run.workspace_id, run.function_id)
    retries = fn.retries if fn is not None else 0
    if retriable and run.attempt <= retries:
        store.retry_body(conn, run.rowid, core.clock.now_ms() + _backoff(core, run.attempt))
        core.workflows.on_ready()
        return
    run_service.finish(core, conn, run, RunStatus.FAILED, error=(error.name, error.message))


def _record_inline_step(core: Core, conn: Conn, run: Run, done: StepDone, *, carry_on: bool = True) -> bool:
    """A `run` step the body call executed itself: store it, then carry on; True when it completed."""
    step = store.step_by_key(conn, run.rowid, done.key)
    if step is None:
        if store.count_steps(conn, run.rowid) >= MAX_STEPS:
            _too_many_steps(core, conn, run)
            return False
        now = core.clock.now_ms()
        rowid = store.insert_step(conn, _new_step(run, done.key, done.id, StepType.RUN, StepStatus.RUNNING, now), attempts=1)
        step = store.step_row(conn, rowid)
    assert step is not None
    return _settle_step(core, conn, run, step, done, carry_on=carry_on)


def _apply_step_result(core: Core, conn: Conn, call: RunCall, result: CallResult) -> None:
    run = store.run_row(conn, call.run_rowid)
    step = store.step_row(conn, call.step_rowid or 0)
    assert run is not None and step is not None
    answer = result.answer
    if isinstance(answer, StepDone) and answer.key == call.step_key:
        _settle_step(core, conn, run, step, answer)
        return
    if isinstance(answer, Failure):
        error, retriable = answer.error, answer.retriable
    elif answer is None:
        error, retriable = ErrorInfo(name="CallFailed", message=result.failure or "the call failed"), True
    else:
        error, retriable = ErrorInfo(name="ProtocolError", message=f"the answer did not run step {call.step_key}"), True
    _settle_step(core, conn, run, step, StepDone(key=step.key, id=step.name, status="failed", error=error, retriable=retriable))


def _settle_step(
    core: Core, conn: Conn, run: Run, step: Step, done: StepDone, *, carry_on: bool = True
) -> bool:
    """A `run` step's attempt ended: completed, retried after backoff, or failed for good; True when completed.

    Unless `carry_on` is False (the answer says what comes next itself), the run's body is called again.
    """
    now = core.clock.now_ms()
    if done.status == "completed":
        try:
            store.end_step(conn, step.rowid, StepStatus.COMPLETED, now, output=_encoded_output(done.output))
        except _StepFailure as exc:
            store.end_step(conn, step.rowid, StepStatus.FAILED, now, error=error_json(exc.name, exc.message))
        else:
            if not carry_on:
                return True
    else:
        error = done.error or ErrorInfo(name="StepError", message="the step failed")
        fn = core.workflows.function(run.workspace_id, run.function_id)
        attempts_left = (fn.retries + 1 if fn is not None else 1) - step.attempts
        open_run = run.status not in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
        if done.retriable and attempts_left > 0 and open_run:
            store.reschedule_step(conn, step.rowid, now + _backoff(core, step.attempts), error_json(error.name, error.message))
            core.workflows.on_ready()
            return False
        store.end_step(conn, step.rowid, StepStatus.FAILED, now, error=error_json(error.name, error.message))
    continue_run(core, conn, run.rowid)
    return False


def _apply_hook_result(core: Core, conn: Conn, call: RunCall, result: CallResult) -> None:
    """A hook ran: its error is recorded, never a change of the run's status; a slow one is audited."""
    assert call.step_rowid is not None and call.hook is not None
    now = core.clock.now_ms()
    answer = result.answer
    took = answer.durationMs if isinstance(answer, HookDone) and answer.durationMs is not None else result.duration_ms
    if isinstance(answer, HookDone) and answer.ok:
        store.end_step(conn, call.step_rowid, StepStatus.COMPLETED, now)
    else:
        if isinstance(answer, HookDone) and answer.error is not None:
            error = answer.error
        else:
            error = ErrorInfo(name="HookCallFailed", message=result.failure or "the hook's call did not answer as a hook")
        store.end_step(conn, call.step_rowid, StepStatus.FAILED, now, error=error_json(error.name, error.message))
        store.add_hook_error(conn, call.run_rowid, {"hook": call.hook, "name": error.name, "message": error.message, "at": now})
        _audit_hook(core, conn, call, "workflow.hook.errored", {"hook": call.hook, "error": error.message[:500]})
    if took > HOOK_SOFT_TIMEOUT_MS:
        _audit_hook(core, conn, call, "workflow.hook.slow", {"hook": call.hook, "durationMs": took})


def _audit_hook(core: Core, conn: Conn, call: RunCall, event_type: str, metadata: dict[str, Any]) -> None:
    audit.record(conn, audit.audit_event(
        call.workspace_id, event_type, actor=audit.SYSTEM, now=core.clock.now_ms(), resource_type="run",
        resource_id=call.run_id, metadata=metadata,
    ))


# Plans ----------------------------------------------------------------------------------------


def _apply_plan(core: Core, conn: Conn, run: Run, plan: Plan) -> None:
    """Carry out the steps the function reached: schedule, sleep, invoke, send, wait."""
    count = store.count_steps(conn, run.rowid)
    now = core.clock.now_ms()
    for planned in plan.steps:
        if store.step_by_key(conn, run.rowid, planned.key) is not None:
            continue  # planned before (a retried call): carried out once
        if count >= MAX_STEPS:
            _too_many_steps(core, conn, run)
            return
        count += 1
        if not _start_step(core, conn, run, planned, now):
            return  # the step ended the run
    continue_if_idle(core, conn, run.rowid)


def continue_if_idle(core: Core, conn: Conn, run_rowid: int) -> None:
    """After a plan: if nothing it started is open (all ended at once), call the body again."""
    if not store.open_step_statuses(conn, run_rowid):
        continue_run(core, conn, run_rowid)


def _start_step(core: Core, conn: Conn, run: Run, planned: PlannedStep, now: int) -> bool:
    """Store one planned step and start it; False when it ended the run (a signal collision)."""
    step_type = StepType(planned.type)
    status = StepStatus.SCHEDULED if step_type == StepType.RUN else StepStatus.WAITING
    step = _new_step(run, planned.key, planned.id, step_type, status, now)
    step.due_at = now if step_type == StepType.RUN else None
    step.rowid = store.insert_step(conn, step)
    if step_type == StepType.RUN:
        core.workflows.on_ready()
        return True
    try:
        opts = msgspec.convert(planned.opts, OPTS_TYPES[planned.type])
        return bool(_STARTERS[step_type](core, conn, run, step, opts, now))
    except msgspec.ValidationError as exc:
        _fail_step(conn, step, "InvalidStepError", f"step {planned.key} ({planned.type}): {exc}", now)
    except _StepFailure as exc:
        _fail_step(conn, step, exc.name, exc.message, now)
    return True


def _start_sleep(core: Core, conn: Conn, run: Run, step: Step, opts: SleepOpts, now: int) -> bool:
    if opts.until is None and opts.ms is None:
        raise _StepFailure("InvalidStepError", "sleep needs `until` or `ms`")
    wake_at = opts.until if opts.until is not None else now + max(0, opts.ms or 0)
    if wake_at <= now:
        store.end_step(conn, step.rowid, StepStatus.COMPLETED, now, output=b"null")
    else:
        store.wait_step(conn, step.rowid, StepStatus.SLEEPING, wake_at)
    return True


def _start_invoke(core: Core, conn: Conn, run: Run, step: Step, opts: InvokeOpts, now: int) -> bool:
    if not 0 < opts.timeout_ms <= MAX_INVOKE_TIMEOUT_MS:
        raise _StepFailure("InvokeError", "invoke's timeout must be more than 0 and at most 24h")
    fn = core.workflows.function(run.workspace_id, opts.function)
    if fn is None:
        raise _StepFailure("InvokeError", f"function '{opts.function}' does not exist")
    if fn.trigger_type != "event" or fn.trigger_event is None:
        raise _StepFailure("InvokeError", f"function '{opts.function}' is cron-triggered and cannot be invoked")
    data = _encoded_output(opts.data)
    event = NewEvent(id=new_id("evt", now), name=fn.trigger_event, data=data, ts=now)
    try:
        child = run_service.start_run(core, conn, fn, event, parent=(run.id, step.rowid))
    except Exception as exc:  # the quota, most likely: the step fails, not the call
        raise _StepFailure("InvokeError", f"could not start '{fn.id}': {exc}") from exc
    store.set_child(conn, step.rowid, child.id)
    store.wait_step(conn, step.rowid, StepStatus.WAITING, now + opts.timeout_ms)
    return True


def _start_send_event(core: Core, conn: Conn, run: Run, step: Step, opts: SendEventOpts, now: int) -> bool:
    try:
        event_id = publish(core, conn, run.workspace_id, opts.name, opts.data, ts=opts.ts).id
    except Exception as exc:  # a bad name, too much data, the quota: the step fails with the reason
        raise _StepFailure("SendEventError", getattr(exc, "message", str(exc))) from exc
    store.end_step(conn, step.rowid, StepStatus.COMPLETED, now, output=msgspec.json.encode({"id": event_id}))
    store.set_event_name(conn, step.rowid, opts.name)
    return True


def _start_wait_for_signal(core: Core, conn: Conn, run: Run, step: Step, opts: SignalOpts, now: int) -> bool:
    if not opts.signal or len(opts.signal) > 256:
        raise _StepFailure("InvalidStepError", "signal must be 1 to 256 characters")
    if opts.timeout_ms <= 0:
        raise _StepFailure("InvalidStepError", "wait_for_signal's timeout must be more than 0")
    store.set_signal(conn, step.rowid, opts.signal)
    if not store.add_signal_waiter(conn, run.workspace_id, step, opts.signal, now):
        message = f"signal '{opts.signal}' is already awaited by another run"
        _fail_step(conn, step, "SIGNAL_COLLISION", message, now)
        run_service.finish(core, conn, run, RunStatus.FAILED, error=("SIGNAL_COLLISION", message))
        return False
    store.wait_step(conn, step.rowid, StepStatus.WAITING, now + opts.timeout_ms)
    return True


def _start_wait_for_event(core: Core, conn: Conn, run: Run, step: Step, opts: EventWaitOpts, now: int) -> bool:
    if opts.timeout_ms <= 0:
        raise _StepFailure("InvalidStepError", "wait_for_event's timeout must be more than 0")
    if not valid_event_name(opts.event):
        raise _StepFailure("InvalidStepError", f"no event can be named {opts.event!r}: names must match {EVENT_NAME}")
    pin = None
    if opts.match:
        try:
            pin = cel_match.compile_match(opts.match).pin
        except cel_match.InvalidMatch as exc:
            raise _StepFailure("InvalidMatchError", str(exc)) from exc
    store.set_event_name(conn, step.rowid, opts.event)
    store.add_event_waiter(conn, run.workspace_id, step, opts.event, opts.match or None, pin, now)
    if pin is not None:
        core.workflows.add_pin(run.workspace_id, opts.event, pin[0])
    store.wait_step(conn, step.rowid, StepStatus.WAITING, now + opts.timeout_ms)
    return True


_STARTERS: dict[StepType, Any] = {
    StepType.SLEEP: _start_sleep, StepType.INVOKE: _start_invoke, StepType.SEND_EVENT: _start_send_event,
    StepType.WAIT_FOR_SIGNAL: _start_wait_for_signal, StepType.WAIT_FOR_EVENT: _start_wait_for_event,
}


# Time ------------------------------------------------------------------------------------------

_TIMEOUT_OF = {
    StepType.WAIT_FOR_SIGNAL: ("SignalTimeoutError", "no signal '{signal}' arrived within the timeout"),
    StepType.INVOKE: ("WorkflowTimeoutError", "run {child} did not end within the timeout (it keeps running)"),
}


def wake_due(core: Core, conn: Conn, now: int, limit: int) -> int:
    """Sleeping steps whose time came complete; waits whose timeout came end as their kind says."""
    due = store.due_waits(conn, now, limit)
    for step in due:
        try:
            with savepoint(conn, "wake"):
                _wake(core, conn, step, now)
        except Exception as exc:  # a bug must fail this run, not every pass of the driver
            log.exception("waking a step failed; its run fails", extra={"step": step.key})
            run_service.fail_broken(core, conn, step.run_rowid, f"waking step {step.key} failed: {type(exc).__name__}")
    return len(due)


def _wake(core: Core, conn: Conn, step: Step, now: int) -> None:
    if step.status == StepStatus.SLEEPING or step.type == StepType.WAIT_FOR_EVENT:
        ended = store.end_step(conn, step.rowid, StepStatus.COMPLETED, now, output=b"null")
    else:
        name, template = _TIMEOUT_OF[step.type]
        text = error_json(name, template.format(signal=step.signal, child=step.child_run_id))
        ended = store.end_step(conn, step.rowid, StepStatus.FAILED, now, error=text)
    if ended:
        _release_waiter(conn, step, now)
        continue_run(core, conn, step.run_rowid)


def _release_waiter(conn: Conn, step: Step, now: int) -> None:
    store.delete_waiter_of_step(conn, step.rowid)
    if step.type == StepType.WAIT_FOR_SIGNAL and step.signal is not None:
        run = store.run_row(conn, step.run_rowid)
        if run is not None:
            store.resolve_signal(conn, run.workspace_id, step.signal, run.id, "timed_out", now)


# Helpers -----------------------------------------------------------------------------------------


def _new_step(run: Run, key: str, name: str, step_type: StepType, status: StepStatus, now: int) -> Step:
    return Step(
        rowid=0, run_rowid=run.rowid, key=key, name=name, type=step_type, status=status, attempts=0, output=None,
        error=None, child_run_id=None, signal=None, event_name=None, started_at=now, ended_at=None, due_at=None,
    )


def _fail_step(conn: Conn, step: Step, name: str, message: str, now: int) -> None:
    store.end_step(conn, step.rowid, StepStatus.FAILED, now, error=error_json(name, message))


def _too_many_steps(core: Core, conn: Conn, run: Run) -> None:
    run_service.finish(core, conn, run, RunStatus.FAILED, error=("StepLimitExceeded", f"a run may have at most {MAX_STEPS} steps"))


def _encoded_output(value: Any) -> bytes:
    try:
        encoded = msgspec.json.encode(value)
    except (TypeError, ValueError) as exc:
        raise _StepFailure("OutputError", f"output is not JSON: {exc}") from exc
    if len(encoded) > MAX_OUTPUT_BYTES:
        raise _StepFailure("OutputTooLarge", f"output is {len(encoded)} bytes; the limit is {MAX_OUTPUT_BYTES}")
    return encoded


def _backoff(core: Core, attempt: int) -> int:
    return backoff_ms(BackoffType.EXPONENTIAL, core.settings.workflows.ms("retry_delay"), attempt)

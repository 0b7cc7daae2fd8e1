"""Answering one call: run the workflow function from the top and say what it did, or run a hook."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec

from rotor_lite.sdk.errors import NonRetriableError, WorkflowError, workflow_error
from rotor_lite.sdk.workflows._function import Context, WorkflowFunction
from rotor_lite.sdk.workflows._memo import Memo, Reached
from rotor_lite.sdk.workflows._protocol import (
    Answer,
    Call,
    Complete,
    ErrorInfo,
    Failed,
    HookDone,
    OutputError,
    Plan,
    SavedStep,
    StepCompleted,
    StepFailed,
    Waiting,
    encode_output,
)
from rotor_lite.sdk.workflows._step import Step

__all__ = ["answer_hook", "answer_run"]

log = logging.getLogger("rotor_lite.sdk.workflows")

HOOK_SOFT_TIMEOUT_S = 30.0
_abandoned: set[asyncio.Task[Any]] = set()  # cancelled runs of the function, kept until they finish unwinding


async def answer_run(function: WorkflowFunction, call: Call) -> Answer:
    """Run the function until it returns, raises, or blocks on steps without an outcome; say which."""
    memo = Memo(saved=call.steps, target=call.target)
    task = asyncio.create_task(function.handler(context_of(call), Step(memo)))
    try:
        await _first_block_or_end(task, memo)
        if not task.done():
            await memo.settled()
        if call.target is not None:
            return await _answer_target(task, memo, call.target)
        return await _answer_progress(function, call, task, memo)
    finally:
        _abandon(task)


async def answer_hook(function: WorkflowFunction, call: Call) -> HookDone:
    """Run the lifecycle hook `call.hook`; report its error and how long it took (it is never stopped)."""
    started = time.monotonic()
    try:
        error = await _run_hook(function, call)
    except Exception as exc:  # a hook's failure is reported to rotor-lite, not raised
        log.warning("workflow hook failed", exc_info=True, extra={"function_id": function.id, "hook": call.hook})
        error = error_info(exc)
    duration = time.monotonic() - started
    if duration > HOOK_SOFT_TIMEOUT_S:
        log.warning("workflow hook was slow", extra={"function_id": function.id, "hook": call.hook, "s": duration})
    return HookDone(ok=error is None, duration_ms=round(duration * 1000), error=error)


def context_of(call: Call) -> Context:
    return Context(event=call.event, run_id=call.run_id, attempt=call.attempt, function_id=call.function_id)


def error_info(exc: BaseException) -> ErrorInfo:
    """The protocol's `{name, message}` for an exception; a saved error keeps the name it was saved under."""
    if isinstance(exc, WorkflowError):
        return ErrorInfo(name=exc.name, message=exc.message)
    return ErrorInfo(name=type(exc).__name__, message=str(exc))


async def _first_block_or_end(task: asyncio.Task[Any], memo: Memo) -> None:
    blocked = asyncio.create_task(memo.blocked.wait())
    try:
        await asyncio.wait({task, blocked}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        blocked.cancel()


async def _answer_progress(function: WorkflowFunction, call: Call, task: asyncio.Task[Any], memo: Memo) -> Answer:
    if task.done():
        return _finished(task)
    if len(memo.new) == 1 and memo.new[0].type == "run":
        done = await _execute(memo.new[0])
        if isinstance(done, StepCompleted):
            done.then = await _then(function, call, done)
        return done
    if memo.new:
        return Plan(steps=[reached.planned() for reached in memo.new])
    return Waiting()


async def _then(function: WorkflowFunction, call: Call, done: StepCompleted) -> Complete | Failed | Plan | Waiting | None:
    """What the function does with the step's output, when that runs nothing: its end, a wait, a plan.

    The function runs again from the top with the output saved. When it next reaches another `run`
    step, nothing is said: that step may run only once rotor-lite has saved this one's output.
    """
    saved = {**call.steps, done.key: SavedStep(status="completed", output=msgspec.json.decode(done.output))}
    memo = Memo(saved=saved)
    task = asyncio.create_task(function.handler(context_of(call), Step(memo)))
    try:
        await _first_block_or_end(task, memo)
        if not task.done():
            await memo.settled()
        if task.done():
            return _finished(task)
        if any(reached.type == "run" for reached in memo.new):
            return None
        return Plan(steps=[reached.planned() for reached in memo.new]) if memo.new else Waiting()
    finally:
        _abandon(task)


async def _answer_target(task: asyncio.Task[Any], memo: Memo, target: str) -> Answer:
    reached = memo.target_step
    if reached is not None and reached.type == "run":
        return await _execute(reached)
    if reached is not None:
        return _not_executable(f"step {target!r} is a {reached.type} step: only run steps are executed by the app")
    if task.done() and (task.cancelled() or task.exception() is not None):
        return _finished(task)
    return _not_executable(
        f"the function did not reach step {target!r}: a workflow function must reach the same steps, "
        "in the same order, on every call"
    )


def _not_executable(message: str) -> Failed:
    return Failed(error=ErrorInfo(name="TargetNotReachedError", message=message), retriable=False)


def _finished(task: asyncio.Task[Any]) -> Complete | Failed:
    if task.cancelled():
        error = ErrorInfo(name="CancelledError", message="the workflow function was cancelled")
        return Failed(error=error, retriable=True)
    exc = task.exception()
    if exc is not None:
        return Failed(error=error_info(exc), retriable=not isinstance(exc, WorkflowError | NonRetriableError))
    try:
        return Complete(output=encode_output(task.result(), what="the function's return value"))
    except OutputError as exc:
        return Failed(error=ErrorInfo(name="OutputError", message=str(exc)), retriable=False)


async def _execute(reached: Reached) -> StepCompleted | StepFailed:
    """Run a `run` step's callable and answer with its outcome."""
    try:
        value = await reached.execute()
    except Exception as exc:  # the step's failure is its outcome
        log.info("workflow step failed", exc_info=True, extra={"step_key": reached.key})
        return StepFailed(
            key=reached.key, id=reached.id, error=error_info(exc), retriable=not isinstance(exc, NonRetriableError)
        )
    try:
        output = encode_output(value, what=f"the output of step {reached.id!r}")
    except OutputError as exc:
        error = ErrorInfo(name="OutputError", message=str(exc))
        return StepFailed(key=reached.key, id=reached.id, error=error, retriable=False)
    return StepCompleted(key=reached.key, id=reached.id, output=output, status="completed")


async def _run_hook(function: WorkflowFunction, call: Call) -> ErrorInfo | None:
    """Call the declared hook; an ErrorInfo when the function declares no such hook."""
    ctx = context_of(call)
    if call.hook == "on_success" and function.on_success is not None:
        await function.on_success(ctx, call.output)
    elif call.hook == "on_failure" and function.on_failure is not None:
        saved = call.error or ErrorInfo(name="WorkflowError", message="the run failed")
        await function.on_failure(ctx, workflow_error(saved.name, saved.message, default=WorkflowError))
    elif call.hook == "on_cancel" and function.on_cancel is not None:
        await function.on_cancel(ctx)
    else:
        return ErrorInfo(name="HookNotDeclaredError", message=f"function {function.id!r} declares no {call.hook} hook")
    return None


def _abandon(task: asyncio.Task[Any]) -> None:
    """Stop the function's run for this call without waiting on it: its steps are answered already."""
    if task.done():
        if not task.cancelled():
            task.exception()  # retrieved, so that asyncio does not log it as never retrieved
        return
    _abandoned.add(task)
    task.add_done_callback(_forget)
    task.cancel()


def _forget(task: asyncio.Task[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()

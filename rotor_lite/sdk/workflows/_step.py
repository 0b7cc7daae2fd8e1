"""`step`: the six primitives a workflow function checkpoints its work with."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

import msgspec

from rotor_lite.sdk.workflows._function import WorkflowFunction
from rotor_lite.sdk.workflows._memo import Memo, Reached
from rotor_lite.sdk.workflows._time import Duration, Instant, duration_ms, epoch_ms

__all__ = ["MAX_INVOKE_TIMEOUT_MS", "Step"]

P = ParamSpec("P")
MAX_INVOKE_TIMEOUT_MS = 24 * 3_600_000


class Step:
    """The step primitives. Each takes a step id; the n-th use of an id in a run is its own step.

    A step whose outcome rotor-lite saved returns it at once; a new one runs (`run`) or is carried
    out by rotor-lite (the others), and the function continues with its result on a later call.
    """

    def __init__(self, memo: Memo) -> None:
        self._memo = memo

    async def run(self, id: str, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Run `fn(*args, **kwargs)` (sync or async) once per run and return its JSON result."""
        if not callable(fn):
            raise TypeError(f"step.run({id!r}, ...) needs a callable, not {type(fn).__name__}")
        action = functools.partial(_call, fn, *args, **kwargs)
        return await self._reach(id, "run", {}, action)

    async def sleep(self, id: str, duration: Duration) -> None:
        """Pause the run for `duration`: seconds, a timedelta, or a string like "30s", "5m", "7d"."""
        await self._reach(id, "sleep", {"ms": duration_ms(duration)})

    async def sleep_until(self, id: str, when: Instant) -> None:
        """Pause the run until `when`: a datetime (naive means UTC), an ISO 8601 string, or epoch ms."""
        await self._reach(id, "sleep", {"until": epoch_ms(when, what="sleep_until time")})

    async def invoke(
        self, id: str, *, workflow: str | WorkflowFunction, data: Any = None, timeout: Duration
    ) -> Any:
        """Run an event-triggered workflow as a child and return `{"result", "runId"}` when it completes.

        Raises WorkflowFailedError, WorkflowCancelledError, or WorkflowTimeoutError after `timeout`
        (at most 24 h; the child keeps running).
        """
        opts = {
            "function": _function_id(workflow),
            "data": _json(data),
            "timeoutMs": _timeout_ms(timeout, maximum=MAX_INVOKE_TIMEOUT_MS),
        }
        return await self._reach(id, "invoke", opts)

    async def send_event(self, id: str, *, name: str, data: Any = None, ts: Instant | None = None) -> Any:
        """Send an event (at `ts`, epoch ms or a datetime, when given) once per run; returns `{"id"}`."""
        opts = {
            "name": _text("name", name),
            "data": _json(data),
            "ts": None if ts is None else epoch_ms(ts, what="ts"),
        }
        return await self._reach(id, "send_event", opts)

    async def wait_for_signal(self, id: str, *, signal: str, timeout: Duration) -> Any:
        """Wait for `POST /v1/signals/<signal>/complete` and return its `data`; SignalTimeoutError after `timeout`."""
        opts = {"signal": _text("signal", signal), "timeoutMs": _timeout_ms(timeout)}
        return await self._reach(id, "wait_for_signal", opts)

    async def wait_for_event(self, id: str, *, event: str, match: str | None = None, timeout: Duration) -> Any:
        """Wait for a later event named `event` for which the CEL `match` holds; its `data`, or None after `timeout`."""
        if match is not None:
            _text("match", match)
        opts = {"event": _text("event", event), "match": match, "timeoutMs": _timeout_ms(timeout)}
        return await self._reach(id, "wait_for_event", opts)

    async def _reach(
        self, step_id: str, type: str, opts: dict[str, Any], action: Callable[[], Awaitable[Any]] | None = None
    ) -> Any:
        _text("step id", step_id)
        key = self._memo.next_key(step_id)
        return await self._memo.outcome(Reached(key=key, id=step_id, type=type, opts=opts, action=action))



async def _call(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Await an async callable; run a sync one in a worker thread (awaiting what it returns, if awaitable)."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    result = await asyncio.to_thread(fn, *args, **kwargs)
    return await result if inspect.isawaitable(result) else result


def _timeout_ms(value: Duration, *, maximum: int | None = None) -> int:
    ms = duration_ms(value, what="timeout")
    if ms <= 0:
        raise ValueError("timeout must be positive")
    if maximum is not None and ms > maximum:
        raise ValueError(f"timeout is {ms} ms; step.invoke waits at most 24h")
    return ms


def _function_id(workflow: str | WorkflowFunction) -> str:
    return workflow.id if isinstance(workflow, WorkflowFunction) else _text("workflow", workflow)


def _json(data: Any) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(data))


def _text(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{what} must not be empty")
    return value

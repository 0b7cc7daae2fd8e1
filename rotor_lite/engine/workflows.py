"""The run driver: makes the calls that move workflow runs, and records what they answered.

One loop, like the dispatcher's: each pass is one writer operation that records the answers that
came in, puts back calls whose lease ran out, wakes sleeping steps whose time came, ends waits
whose timeout came, publishes deferred events whose time came, and leases the calls that are due
(up to the free slots). The calls then go out through the delivery engine's session. A sleeping
or waiting run is only rows: no task, timer or connection exists for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter, deque
from functools import partial
from typing import Any

import msgspec

from rotor_lite.engine.delivery import Deliverer
from rotor_lite.engine.sending import Post, Signing, elapsed_ms
from rotor_lite.files import node_id
from rotor_lite.models import Run, RunCall, Step, StepStatus, StepType
from rotor_lite.protocol import PROTOCOL_VERSION, CallResult, decode_answer
from rotor_lite.services import run_progress
from rotor_lite.services import runs as run_service
from rotor_lite.services.core import Core
from rotor_lite.services.workflow_events import deliver_due_events
from rotor_lite.services.workflow_state import SIGNING_KEY_CHANNEL
from rotor_lite.store import runs as store
from rotor_lite.store.contract import Conn, is_postgres

log = logging.getLogger("rotor_lite.workflows")

_BATCH = 500
_MAX_ANSWER_BYTES = 5 * 1024 * 1024  # a step's output (4 MiB) and the answer around it
_PENDING = {"status": "pending"}


class _Op:
    """One pass's results, filled in on the writer thread."""

    def __init__(self, results: list[tuple[RunCall, CallResult]], claim: bool) -> None:
        self.results = results
        self.claim = claim
        self.calls: list[tuple[RunCall, bytes]] = []  # each leased call with its request body
        self.next_due: int | None = None
        self.more = False  # a batch limit was reached: pass again at once


class RunDriver:
    """Drives every workflow run of the server; `stop()` stops calling and waits for calls in flight."""

    def __init__(self, core: Core, deliverer: Deliverer) -> None:
        self._core = core
        self._deliverer = deliverer
        self._node = node_id(core.settings.data_path)
        self._owner = f"{self._node}.{os.urandom(4).hex()}"  # "<node>.<boot>": a restart finds its node's leases
        self._results: deque[tuple[RunCall, CallResult]] = deque()
        self._in_flight: Counter[tuple[str, str]] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._requests = 0
        self._seen = -1
        self._next_due: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        settings = core.settings.workflows
        self._poll_ms = settings.ms("poll_interval")
        self._max_in_flight = settings.max_in_flight
        self._call_ms, self._hook_ms, self._lease_ms = settings.ms("call_timeout"), settings.ms("hook_timeout"), settings.ms("lease")

    async def __aenter__(self) -> RunDriver:
        self._loop = asyncio.get_running_loop()
        self._core.workflows.on_ready = self.wake
        if is_postgres(self._core.db):
            self._core.db.listen(SIGNING_KEY_CHANNEL, self._core.workflows.forget_signing_keys)
        now = self._core.clock.now_ms()
        requeued = await self._core.db.write(lambda conn: store.requeue_orphans(conn, now, self._node))
        if requeued:
            log.warning("workflow calls left in flight by a previous process are due again", extra={"count": requeued})
        self._task = asyncio.create_task(self._run(), name="rotor-run-driver")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(self._core.settings.server.ms("drain_timeout") / 1000)

    def wake(self) -> None:
        """Something became due (safe to call from the writer thread)."""
        self._requests += 1
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def stop(self, drain_seconds: float) -> None:
        """Stop leasing calls; let those in flight finish and be recorded (bounded), then cancel the rest."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), drain_seconds)
            except TimeoutError:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # Event loop side --------------------------------------------------------------------------

    async def _run(self) -> None:
        again = True
        while not self._stopping or self._tasks or self._results:
            if not again:
                await self._sleep()
            again = await self._pass()

    async def _sleep(self) -> None:
        wait_ms = self._poll_ms
        if self._next_due is not None:  # ahead when the pass ended; it may have come since
            wait_ms = min(wait_ms, self._next_due - self._core.clock.now_ms())
        if wait_ms > 0 and self._requests == self._seen and not self._results:
            try:
                async with asyncio.timeout(wait_ms / 1000):
                    await self._wake.wait()
            except TimeoutError:
                pass
        self._wake.clear()

    async def _pass(self) -> bool:
        """One writer operation; True when another should follow at once."""
        self._seen = self._requests
        results = [self._results.popleft() for _ in range(len(self._results))]
        op = _Op(results, claim=not self._stopping)
        try:
            await self._core.db.write(partial(self._run_op, op=op))
        except Exception:
            log.exception("recording workflow call results failed; each is recorded alone")
            await self._record_one_by_one(results)
            return False
        self._next_due = op.next_due
        for call, body in op.calls:
            self._start(call, body)
        return op.more

    async def _record_one_by_one(self, results: list[tuple[RunCall, CallResult]]) -> None:
        """After a failed pass: each result alone, and a run whose result cannot be recorded fails."""
        for call, result in results:
            try:
                await self._core.db.write(partial(run_progress.apply_result, self._core, call=call, result=result))
            except Exception as exc:
                log.exception("a workflow call result could not be recorded; the run fails", extra={"run_id": call.run_id})
                reason = f"recording a call's result failed: {type(exc).__name__}"
                await self._core.db.write(partial(run_service.fail_broken, self._core, run_rowid=call.run_rowid, reason=reason))

    def _start(self, call: RunCall, body: bytes) -> None:
        self._in_flight[(call.workspace_id, call.function_id)] += 1
        task = asyncio.create_task(self._call(call, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, call: RunCall, body: bytes) -> None:
        try:
            result = await self._make_call(call, body)
        except Exception as exc:  # a bug in building the call must fail the call, not the driver
            log.exception("workflow call crashed", extra={"run_id": call.run_id})
            result = CallResult(answer=None, failure=f"internal error: {type(exc).__name__}")
        self._in_flight[(call.workspace_id, call.function_id)] -= 1
        self._core.metrics.run_calls.labels(_outcome(result)).inc()
        self._results.append((call, result))
        self._wake.set()

    async def _make_call(self, call: RunCall, body: bytes) -> CallResult:
        fn = self._core.workflows.function(call.workspace_id, call.function_id)
        if fn is None:
            return CallResult(answer=None, failure=f"function '{call.function_id}' is not registered")
        keys = self._core.workflows.signing_keys(call.workspace_id)
        if keys is None:  # made on another node, or rotated there
            keys = await self._core.workflows.fetch_signing_keys(self._core.db, self._core.vault, call.workspace_id)
        if keys is None:
            return CallResult(answer=None, failure="the workspace's signing key is gone")
        now = self._core.clock.now_ms()
        signing = Signing(scheme="rotor", message_id=call.run_id, timestamp=now // 1000, secrets=keys.active(now))
        headers = {
            "x-rotor-run-id": call.run_id, "x-rotor-function-id": call.function_id, "x-rotor-attempt": str(call.attempt),
            "x-rotor-timestamp": str(signing.timestamp),
        }
        return await self._post(fn.serve_url, body, headers, signing, self._hook_ms if call.hook else self._call_ms)

    async def _post(self, url: str, body: bytes, headers: dict[str, str], signing: Signing, timeout_ms: int) -> CallResult:
        started = time.perf_counter()
        answer = await self._deliverer.post(Post(
            url=url, body=body, headers=headers, timeout_ms=timeout_ms, max_bytes=_MAX_ANSWER_BYTES, field="serve_url",
            signing=signing,
        ))
        if answer.failure == "timeout":
            return _failed(f"no answer within {timeout_ms} ms", started)
        if answer.failure is not None or answer.status is None:
            return _failed(answer.error or "no answer", started)
        if answer.cut:
            return _failed(f"the answer is larger than {_MAX_ANSWER_BYTES} bytes, or did not end in time", started)
        if not 200 <= answer.status < 300:
            return _failed(f"HTTP {answer.status}: {answer.body[:200].decode('utf-8', 'replace')}", started)
        try:
            return CallResult(answer=decode_answer(answer.body), duration_ms=elapsed_ms(started))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return _failed(f"the answer is not one of the protocol's: {exc}", started)

    # Writer thread side ----------------------------------------------------------------------

    def _run_op(self, conn: Conn, op: _Op) -> None:
        core, now = self._core, self._core.clock.now_ms()
        for call, result in op.results:
            run_progress.apply_result(core, conn, call, result)
        store.reap_expired(conn, now)
        op.more = run_progress.wake_due(core, conn, now, _BATCH) == _BATCH
        op.more |= deliver_due_events(core, conn, now, _BATCH) == _BATCH
        store.clear_blocked_due(conn, now, _BATCH)
        if op.claim:
            op.calls = [(call, _encoded_request(conn, call)) for call in self._claim(conn, now)]
            op.more |= len(op.calls) == _BATCH
        next_due = store.next_due_at(conn)
        # A due time already past here waits on a free slot or a concurrency limit: an answer or the poll wakes us.
        op.next_due = next_due if next_due is not None and next_due > now else None

    def _claim(self, conn: Conn, now: int) -> list[RunCall]:
        free = min(_BATCH, self._max_in_flight - sum(self._in_flight.values()))
        if free <= 0:
            return []
        taken: Counter[tuple[str, str]] = Counter()
        # PostgreSQL: other nodes call the function too, so its calls in flight are counted in the database.
        postgres = is_postgres(conn)
        counted: dict[tuple[str, str], int] = {}

        def in_flight(key: tuple[str, str]) -> int:
            if not postgres:
                return self._in_flight[key]
            if key not in counted:
                counted[key] = store.leased_calls(conn, *key)
            return counted[key]

        def allowed(key: tuple[str, str]) -> bool:
            fn = self._core.workflows.function(*key)
            limit = fn.concurrency if fn is not None else None
            if limit is not None and in_flight(key) + taken[key] >= limit:
                return False
            taken[key] += 1
            return True

        lease, hook_lease = self._lease_ms + self._call_ms, self._lease_ms + self._hook_ms
        calls = store.claim_due_steps(conn, now, free, self._owner, lease, allowed, hook_lease_ms=hook_lease)
        calls += store.claim_due_runs(conn, now, free - len(calls), self._owner, lease, allowed)
        return calls


def _encoded_request(conn: Conn, call: RunCall) -> bytes:
    """The body of a call just leased, read in the transaction that leased it (no reader round trips)."""
    run = store.run_row(conn, call.run_rowid)
    assert run is not None, "a leased run exists"
    return msgspec.json.encode(_request_body(call, run, store.steps_of(conn, call.run_rowid)))


def _request_body(call: RunCall, run: Run, steps: list[Step]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "v": PROTOCOL_VERSION, "kind": "hook" if call.hook else "run", "functionId": run.function_id, "runId": run.id,
        "attempt": call.attempt,
        "event": {"id": run.event_id, "name": run.event_name, "data": msgspec.Raw(run.event_data), "ts": run.event_ts},
        "steps": {step.key: _saved(step) for step in steps if step.type != StepType.HOOK},
        "target": call.step_key,
    }
    if call.hook:
        body["hook"] = call.hook
        body["output"] = msgspec.Raw(run.output) if run.output is not None else None
        body["error"] = msgspec.Raw(run.error.encode()) if run.error else None
    return body


def _saved(step: Step) -> dict[str, Any]:
    if step.status == StepStatus.COMPLETED:
        return {"status": "completed", "output": msgspec.Raw(step.output or b"null")}
    if step.status == StepStatus.FAILED:
        return {"status": "failed", "error": msgspec.Raw((step.error or "{}").encode())}
    return _PENDING


def _failed(reason: str, started: float) -> CallResult:
    return CallResult(answer=None, failure=reason, duration_ms=elapsed_ms(started))



def _outcome(result: CallResult) -> str:
    return "failed" if result.answer is None else type(result.answer).__name__.lower()

"""Pull workers: the jobs of a queue without a callback URL are leased by workers over the API.

A worker asks for jobs (`lease_jobs`, optionally waiting for some: a long poll), extends its lease
while it works (`heartbeat`) and reports how each job ended (`complete_job`, `fail_job`). The claim
and the outcome take the path of callback jobs (`services.leases`): the same queue rules, states,
attempt log, backoff, dead-lettering, observers and events. They run in the writer's group commit,
and the lease requests (and the reports) that reach the writer together share one write.

Long polls: a lease request that finds nothing waits in its queue's line. When jobs may have become
ready (an enqueue, a retry, an approval, a slot freed by an outcome, a lease put back, a resumed
queue), the first request of each line is woken and claims; one that got all it asked for wakes the
next, since more may be ready, and one that leaves with a wake it did not use hands it on. A timer
wakes the lines when the next delayed job or rate-limited group is due, and every poll interval as a
safety net. At most `dispatch.max_waiting_leases` requests wait at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec

from rotor_lite.durations import parse_duration_ms
from rotor_lite.errors import Conflict, RateLimited, ValidationError
from rotor_lite.models import Attempt, Claimed, JobState, Principal, Queue, QueueState, Settlement, public_state
from rotor_lite.schemas import CompleteRequest, FailRequest, HeartbeatRequest, LeaseRequest, Outcome, OutcomesRequest
from rotor_lite.services import leases
from rotor_lite.services import secrets as vault
from rotor_lite.services.core import Core
from rotor_lite.store import counts as count_store
from rotor_lite.store import jobs as job_store
from rotor_lite.store.db import Database
from rotor_lite.store.contract import Conn

log = logging.getLogger("rotor_lite.workers")
MAX_LEASE = 100
MAX_OUTCOMES = 100
MAX_WAIT_MS = 30_000
LEASE_MS = (100, 3_600_000)  # a lease between 100 ms and an hour; heartbeats extend it
MAX_RESULT_BYTES = 64 * 1024
TRUNCATED = "…[truncated]"  # ends a result cut at MAX_RESULT_BYTES
MAX_ERROR_CHARS = 2_000
I = TypeVar("I")
O = TypeVar("O")
NOT_HELD = "the lease token does not hold this job: it is wrong, the lease expired, or the job was settled"


class Leased(msgspec.Struct, frozen=True, kw_only=True):
    """A job handed to a worker: its payload with `${{ secrets.NAME }}` filled in, and its lease."""

    claimed: Claimed
    payload: bytes
    tags: list[str]
    expires_at: int


class Reported(msgspec.Struct, frozen=True, kw_only=True):
    """How a report went: `state` after a completion or failure, `expires_at` after a heartbeat."""

    job_id: str
    state: JobState | None = None
    expires_at: int | None = None


class _Ask(msgspec.Struct, frozen=True):
    queue: Queue
    want: int
    lease_ms: int


class _Claim(msgspec.Struct, frozen=True, kw_only=True):
    jobs: list[Claimed]
    tags: dict[int, list[str]]  # by job rowid, for the jobs that have any
    expires_at: int


class _Report(msgspec.Struct, frozen=True, kw_only=True):
    """A heartbeat (`lease_ms`) or an outcome (`ok` with `result`, or a failure with `error`) of one lease."""

    queue: Queue
    job_id: str
    token: str
    lease_ms: int | None = None
    ok: bool = False
    result: bytes | None = None
    error: str | None = None
    retry: bool = True


# The operations -------------------------------------------------------------------------------


async def lease_jobs(
    core: Core, principal: Principal, queue_name: str, spec: LeaseRequest, gone: asyncio.Event | None = None
) -> list[Leased]:
    """Lease up to `max` jobs of a pull queue for `leaseSeconds`, waiting up to `waitSeconds` for the first
    (and no longer once `gone` is set: the worker hung up)."""
    queue = _pull_queue(core, principal, queue_name)
    if not 1 <= spec.max <= MAX_LEASE:
        raise ValidationError(f"max must be between 1 and {MAX_LEASE}", field="max")
    lease_ms = _lease_ms(spec.lease_seconds, "leaseSeconds")
    wait_ms = _duration_ms(spec.wait_seconds, "waitSeconds")
    if wait_ms > MAX_WAIT_MS:
        raise ValidationError("waitSeconds must be at most 30", field="waitSeconds")
    return await core.pull.lease(queue, spec.max, lease_ms, wait_ms, gone)


async def heartbeat(core: Core, principal: Principal, queue_name: str, job_id: str, spec: HeartbeatRequest) -> Reported:
    """Extend a held lease to `leaseSeconds` from now."""
    queue = _pull_queue(core, principal, queue_name)
    lease_ms = _lease_ms(spec.lease_seconds, "leaseSeconds")
    return await core.pull.report(_Report(queue=queue, job_id=job_id, token=spec.lease_token, lease_ms=lease_ms))


async def complete_job(core: Core, principal: Principal, queue_name: str, job_id: str, spec: CompleteRequest) -> Reported:
    """The worker finished the job: it is completed with `result`, exactly as a 2xx callback completes one."""
    queue = _pull_queue(core, principal, queue_name)
    return await core.pull.report(_outcome(queue, Outcome(id=job_id, lease_token=spec.lease_token, result=spec.result)))


async def fail_job(core: Core, principal: Principal, queue_name: str, job_id: str, spec: FailRequest) -> Reported:
    """The worker failed the job: retried after the queue's backoff while attempts are left (unless
    `retry` is false), else failed and dead-lettered, exactly as a failed callback."""
    queue = _pull_queue(core, principal, queue_name)
    outcome = Outcome(id=job_id, lease_token=spec.lease_token, error=spec.error, retry=spec.retry)
    return await core.pull.report(_outcome(queue, outcome))


async def report_outcomes(core: Core, principal: Principal, queue_name: str, spec: OutcomesRequest) -> list[Reported | None]:
    """Several jobs' outcomes in one request, each as `complete_job` or `fail_job` would apply it; None for
    an outcome whose lease no longer holds its job (it changed nothing)."""
    queue = _pull_queue(core, principal, queue_name)
    if not 1 <= len(spec.outcomes) <= MAX_OUTCOMES:
        raise ValidationError(f"outcomes holds 1 to {MAX_OUTCOMES} outcomes", field="outcomes")
    return await core.pull.report_all([_outcome(queue, outcome) for outcome in spec.outcomes])


def _outcome(queue: Queue, outcome: Outcome) -> _Report:
    if outcome.error is None:
        result = kept_result(msgspec.json.encode(outcome.result))
        return _Report(queue=queue, job_id=outcome.id, token=outcome.lease_token, ok=True, result=result)
    error = outcome.error[:MAX_ERROR_CHARS] or "failed"
    return _Report(queue=queue, job_id=outcome.id, token=outcome.lease_token, error=error, retry=outcome.retry)


def _pull_queue(core: Core, principal: Principal, name: str) -> Queue:
    queue = core.queue_for(principal, name)
    if queue.callback_url:
        raise Conflict(f"queue '{name}' has a callback_url: its jobs are delivered to it, not leased",
                       {"queue": name})
    return queue


def _duration_ms(value: int | str, field: str) -> int:
    try:
        return parse_duration_ms(value)
    except ValueError as exc:
        raise ValidationError(str(exc), field=field) from exc


def _lease_ms(value: int | str, field: str) -> int:
    ms = _duration_ms(value, field)
    if not LEASE_MS[0] <= ms <= LEASE_MS[1]:
        raise ValidationError(f"{field} must be between 100ms and 1h", field=field)
    return ms


def kept_result(encoded: bytes) -> bytes:
    """A result as a job keeps it: up to 64 KiB of JSON, else its text cut there as a JSON string (as callbacks)."""
    if len(encoded) <= MAX_RESULT_BYTES:
        return encoded
    kept = encoded[:MAX_RESULT_BYTES - len(TRUNCATED.encode())].decode("utf-8", "ignore")
    return msgspec.json.encode(kept + TRUNCATED)


def reported_state(reported: Reported) -> str:
    return public_state(reported.state) if reported.state is not None else JobState.ACTIVE.value


# The broker -----------------------------------------------------------------------------------


class _Batch(Generic[I, O]):
    """Items that reach the writer together, written by one operation that answers each.

    The operation takes the items queued when the writer runs it (not when it was queued), so items
    that arrive during a commit join the next one.
    """

    def __init__(self, db: Database, write: Callable[[Conn, list[I]], list[O]]) -> None:
        self._db, self._write = db, write
        self._items: deque[tuple[I, asyncio.Future[O]]] = deque()
        self._queued = False
        self._flushes: set[asyncio.Task[None]] = set()

    async def submit(self, item: I) -> O:
        [answer] = await self.submit_all([item])
        return answer

    async def submit_all(self, items: list[I]) -> list[O]:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[O]] = [loop.create_future() for _ in items]
        self._items.extend(zip(items, futures))
        if not self._queued:
            self._queued = True
            task = asyncio.ensure_future(self._flush())
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)
        return list(await asyncio.gather(*futures))

    async def _flush(self) -> None:
        taken: list[tuple[I, asyncio.Future[O]]] = []

        def write(conn: Conn) -> list[O]:
            self._queued = False  # before taking: an item appended after this queues the next flush
            taken.extend(self._items.popleft() for _ in range(len(self._items)))
            return self._write(conn, [item for item, _ in taken])

        try:
            answers = await self._db.write(write)
        except Exception as exc:
            for _, future in taken:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), answer in zip(taken, answers):
            if not future.done():
                future.set_result(answer)


class _Waiter:
    __slots__ = ("woken",)

    def __init__(self) -> None:
        self.woken = asyncio.Event()


class PullBroker:
    """Leases, reports and long polls of pull workers; runs its timer in the server's lifespan."""

    def __init__(self, core: Core) -> None:
        self._core = core
        self._owner = job_store.WORKER_LEASES + leases.lease_owner(core.settings.data_path)
        self._claims: _Batch[_Ask, _Claim] = _Batch(core.db, self._claim_all)
        self._reports: _Batch[_Report, Reported | None] = _Batch(core.db, self._report_all)
        self._lines: dict[int, deque[_Waiter]] = {}
        self._waiting = 0
        self._max_waiting = core.settings.dispatch.max_waiting_leases
        self._poll_ms = core.settings.dispatch.ms("poll_interval")
        self._next_due: int | None = None
        self._tick = asyncio.Event()  # set (from the writer thread) when an earlier due time came in
        self._wake_timer: Callable[[], None] = lambda: None
        self._timer: asyncio.Task[None] | None = None
        self._closing = False

    async def __aenter__(self) -> PullBroker:
        self._timer = asyncio.create_task(self._run_timer(), name="rotor-pull-timer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)

    def close(self) -> None:
        """The server is stopping: waiting lease requests answer now, with what they have (nothing)."""
        self._closing = True
        for line in self._lines.values():
            for waiter in line:
                waiter.woken.set()

    def wake(self, queue_rowid: int | None = None) -> None:
        """Jobs of that queue (or of any) may have become ready: the first waiter of its line claims."""
        lines = self._lines.values() if queue_rowid is None else [self._lines.get(queue_rowid, deque())]
        for line in lines:
            if line:
                line[0].woken.set()

    async def lease(self, queue: Queue, want: int, lease_ms: int, wait_ms: int, gone: asyncio.Event | None = None) -> list[Leased]:
        """Claim up to `want` jobs; while there are none, wait up to `wait_ms` in the queue's line
        (leaving it early when `gone` is set: the caller hung up)."""
        ask = _Ask(queue, want, lease_ms)
        if wait_ms <= 0 or self._closing:
            return await self._leased(queue, await self._claims.submit(ask))
        claim = _Claim(jobs=[], tags={}, expires_at=0)
        waiter = self._line_up(queue)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ms / 1000
        try:
            while True:
                waiter.woken.clear()
                claim = await self._claims.submit(ask)
                if claim.jobs or self._closing or (gone is not None and gone.is_set()) or loop.time() >= deadline:
                    break
                await _first_of(waiter.woken, gone, deadline - loop.time())
        finally:
            self._leave(queue, waiter, took_all=len(claim.jobs) == want)
        return await self._leased(queue, claim)

    async def report(self, report: _Report) -> Reported:
        """Apply a heartbeat, completion or failure; a lease that no longer holds the job is a 409."""
        [answer] = await self.report_all([report])
        if answer is None:
            raise Conflict(NOT_HELD, {"jobId": report.job_id})
        return answer

    async def report_all(self, reports: list[_Report]) -> list[Reported | None]:
        """Apply the reports in one write; None for each whose lease no longer holds its job."""
        answers = await self._reports.submit_all(reports)
        for queue_rowid in {r.queue.rowid for r in reports if r.lease_ms is None}:
            self.wake(queue_rowid)  # an outcome freed a slot, and a retry may be ready now
        return answers

    # Long polls ---------------------------------------------------------------------------------

    def _line_up(self, queue: Queue) -> _Waiter:
        if self._waiting >= self._max_waiting:
            raise RateLimited(1, self._max_waiting, int(self._core.clock.now_ms() / 1000) + 1,
                              "too many lease requests are waiting for jobs: try again shortly")
        waiter = _Waiter()
        self._lines.setdefault(queue.rowid, deque()).append(waiter)
        self._waiting += 1
        self._core.metrics.waiting_leases.labels(queue.workspace_id, queue.name).inc()
        return waiter

    def _leave(self, queue: Queue, waiter: _Waiter, *, took_all: bool) -> None:
        """Out of the line; the next waiter claims if this one took a full batch or had a wake it did not use."""
        line = self._lines[queue.rowid]
        line.remove(waiter)
        self._waiting -= 1
        self._core.metrics.waiting_leases.labels(queue.workspace_id, queue.name).dec()
        if not line:
            del self._lines[queue.rowid]
        elif took_all or waiter.woken.is_set():
            line[0].woken.set()

    async def _run_timer(self) -> None:
        loop = asyncio.get_running_loop()

        def wake_timer() -> None:
            loop.call_soon_threadsafe(self._tick.set)

        self._wake_timer = wake_timer
        while True:
            wait_ms = self._poll_ms
            if self._next_due is not None:
                wait_ms = max(0, min(wait_ms, self._next_due - self._core.clock.now_ms()))
            try:
                async with asyncio.timeout(wait_ms / 1000):
                    await self._tick.wait()
                self._tick.clear()
                continue  # an earlier due time came in: sleep again until it
            except TimeoutError:
                pass
            if self._next_due is not None and self._next_due <= self._core.clock.now_ms():
                self._next_due = None
            self.wake()

    def _due(self, at: int | None) -> None:
        """Called in the writer thread after a claim: the next time a job may become ready without a wake."""
        if at is not None and (self._next_due is None or at < self._next_due):
            self._next_due = at
            self._wake_timer()

    # Writer thread ------------------------------------------------------------------------------

    def _claim_all(self, conn: Conn, asks: list[_Ask]) -> list[_Claim]:
        core, now = self._core, self._core.clock.now_ms()
        job_store.promote_due(conn, now)
        claims = []
        for ask in asks:
            queue = core.queues.by_rowid(ask.queue.rowid)  # as of now: it may have been paused or changed
            free = 0 if queue is None or queue.state != QueueState.ACTIVE or queue.callback_url else min(
                ask.want, queue.concurrency - count_store.count(conn, queue.rowid, JobState.ACTIVE))
            jobs = leases.claim_jobs(core, conn, queue, free, owner=self._owner, lease_ms=ask.lease_ms, now=now) \
                if queue is not None and free > 0 else []
            tags = job_store.tags_of(conn, [job.rowid for job in jobs]) if jobs else {}
            claims.append(_Claim(jobs=jobs, tags=tags, expires_at=now + ask.lease_ms))
        self._due(leases.next_due(core, conn, now))
        return claims

    def _report_all(self, conn: Conn, reports: list[_Report]) -> list[Reported | None]:
        now = self._core.clock.now_ms()
        held = job_store.held_leases(conn, [(r.queue.rowid, r.job_id, r.token) for r in reports], now)
        answers: list[Reported | None] = [None] * len(reports)
        extended: list[tuple[int, int]] = []
        finished: list[leases.Finished] = []
        settling: dict[int, int] = {}  # job rowid → index of its outcome: one outcome per job and write
        for h in held:
            report = reports[h.index]
            if report.lease_ms is not None:
                extended.append((h.claimed.rowid, now + report.lease_ms))
                answers[h.index] = Reported(job_id=report.job_id, expires_at=now + report.lease_ms)
            elif h.claimed.rowid not in settling:
                settling[h.claimed.rowid] = h.index
                finished.append((report.queue, _settlement(report, h, now)))
        if extended:
            job_store.extend_leases(conn, extended)
        for s in leases.settle(self._core, conn, finished):
            answers[settling[s.claimed.rowid]] = Reported(job_id=s.claimed.id, state=s.state)
        return answers

    # Back on the event loop ---------------------------------------------------------------------

    async def _leased(self, queue: Queue, claim: _Claim) -> list[Leased]:
        leased = []
        for job in claim.jobs:
            try:
                payload = await self._payload(queue, job)
            except vault.UnknownSecret as exc:  # as a callback would: a failed attempt, retried after the backoff
                await self._fail_quietly(queue, job, str(exc))
                continue
            leased.append(Leased(claimed=job, payload=payload, tags=claim.tags.get(job.rowid, []), expires_at=claim.expires_at))
        return leased

    async def _payload(self, queue: Queue, job: Claimed) -> bytes:
        """The payload as a callback would carry it: with `${{ secrets.NAME }}` filled in."""
        if vault.MARKER_BYTES not in job.payload:
            return job.payload
        payload: Any = msgspec.json.decode(job.payload)
        names = vault.payload_names(payload)
        values = await self._core.secret_values.resolve(queue.workspace_id, names, {"jobId": job.id, "queue": queue.name})
        return msgspec.json.encode(vault.substitute_payload(payload, values))

    async def _fail_quietly(self, queue: Queue, job: Claimed, error: str) -> None:
        try:
            await self.report(_Report(queue=queue, job_id=job.id, token=job.lease_token, error=error))
        except Conflict:
            pass  # its lease ran out meanwhile: it is back in the queue anyway


def _settlement(report: _Report, held: job_store.Held, now: int) -> Settlement:
    attempt = Attempt(
        attempt=held.claimed.attempt, at=held.started_at, duration_ms=max(0, now - held.started_at), status=None,
        outcome="2xx" if report.ok else "error", error=None if report.ok else report.error,
    )
    return leases.settlement(report.queue, held.claimed, attempt, now, result=report.result, retry=report.retry)


async def _first_of(woken: asyncio.Event, gone: asyncio.Event | None, seconds: float) -> None:
    """Wait until `woken` (or `gone`) is set, or `seconds` pass."""
    waits = [asyncio.ensure_future(woken.wait())]
    if gone is not None:
        waits.append(asyncio.ensure_future(gone.wait()))
    try:
        await asyncio.wait(waits, timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()

"""The dispatcher: claims due jobs up to each queue's free slots and delivers them.

One loop does every write: it sleeps until woken (a job was enqueued, a delivery
finished, a queue changed) or until the next delayed job is due, with a poll interval
as the safety net; then, in one write op, it records every delivery outcome that came
in since its last write and claims jobs for the free slots, the slots of those
outcomes included. A slot is reused only once its outcome is committed, and the claim
that reuses it shares that commit instead of waiting for a second one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections import Counter, defaultdict
from functools import partial
from typing import Any

import msgspec

from rotor_lite.clock import iso_from_ms
from rotor_lite.engine.backoff import backoff_ms
from rotor_lite.engine.delivery import Deliverer, Outcome
from rotor_lite.models import Attempt, Claimed, JobState, Queue, QueueState
from rotor_lite.services.core import Core
from rotor_lite.store import jobs as job_store
from rotor_lite.store.jobs import Settlement

log = logging.getLogger("rotor_lite.dispatcher")

Finished = tuple[Queue, Settlement]


class _Written(msgspec.Struct, frozen=True):
    """What one write of the loop did: claimed jobs and when the next delayed job is due."""

    claimed: list[Claimed]
    next_due: int | None


class Dispatcher:
    """Claims and delivers jobs; `stop()` stops claiming and waits for deliveries in flight."""

    def __init__(self, core: Core, deliverer: Deliverer) -> None:
        self._core = core
        self._deliverer = deliverer
        self._owner = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._wake = asyncio.Event()
        self._inflight: dict[int, int] = defaultdict(int)
        self._finished: list[Finished] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._counters: dict[tuple[str, str], Any] = {}  # metric children, looked up once per label set
        settings = core.settings.dispatch
        self._poll_ms = settings.ms("poll_interval")
        self._lease_grace_ms = settings.ms("lease")
        self._key_recheck_ms = settings.ms("concurrency_key_recheck")
        self._key_ttl_ms = settings.ms("concurrency_key_ttl")

    async def __aenter__(self) -> Dispatcher:
        self._loop_task = asyncio.create_task(self._run(), name="rotor-dispatcher")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(self._core.settings.server.ms("drain_timeout") / 1000)

    def wake(self) -> None:
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def stop(self, drain_seconds: float) -> None:
        """Stop claiming, let deliveries in flight finish and be recorded (bounded), then cancel the rest."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await _finish_or_cancel({self._loop_task}, drain_seconds)
        await _finish_or_cancel(set(self._tasks), 0)

    async def _run(self) -> None:
        next_due: int | None = None
        # After stop(): no more claims, but the loop keeps recording outcomes until no slot is taken.
        while not self._stopping or any(self._inflight.values()):
            await self._sleep_until(next_due)
            try:
                next_due = await self._write(claim=not self._stopping)
            except Exception:
                log.exception("dispatch failed; retrying after the poll interval")
                next_due = None

    async def _sleep_until(self, next_due: int | None) -> None:
        wait_ms = self._poll_ms
        if next_due is not None:
            wait_ms = max(0, min(wait_ms, next_due - self._core.clock.now_ms()))
        if wait_ms > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), wait_ms / 1000)
            except TimeoutError:
                pass
        self._wake.clear()

    async def _write(self, *, claim: bool) -> int | None:
        """Record the finished deliveries and (unless stopping) claim for the free slots, in one write op."""
        finished, self._finished = self._finished, []
        wants = self._free_slots(finished) if claim else {}
        now = self._core.clock.now_ms()
        try:
            written = await self._core.db.write(lambda conn: self._settle_and_claim(conn, finished, wants, now, claim))
        except Exception:
            log.exception("recording outcomes and claiming failed; recording the outcomes one by one")
            await self._settle_one_by_one(finished)
            written = _Written([], None)
        finally:
            for queue, _ in finished:
                self._inflight[queue.rowid] -= 1  # committed (or given up on: its lease will expire)
        self._start(written.claimed)
        return written.next_due

    def _free_slots(self, finished: list[Finished]) -> dict[int, tuple[Queue, int]]:
        freed = Counter(queue.rowid for queue, _ in finished)
        wants = {}
        for queue in self._core.queues.all():
            if queue.state != QueueState.ACTIVE or not queue.callback_url:
                continue
            free = queue.concurrency - self._inflight[queue.rowid] + freed[queue.rowid]
            if free > 0:
                wants[queue.rowid] = (queue, free)
        return wants

    def _start(self, claimed: list[Claimed]) -> None:
        for job in claimed:
            queue = self._core.queues.by_rowid(job.queue_id)
            if queue is None:
                continue
            self._inflight[queue.rowid] += 1
            task = asyncio.create_task(self._deliver(queue, job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _settle_and_claim(
        self, conn: sqlite3.Connection, finished: list[Finished], wants: dict[int, tuple[Queue, int]], now: int,
        claim: bool,
    ) -> _Written:
        self._settle(conn, finished)
        if not claim:
            return _Written([], None)
        return self._claim(conn, wants, now)

    def _claim(self, conn: sqlite3.Connection, wants: dict[int, tuple[Queue, int]], now: int) -> _Written:
        job_store.promote_due(conn, now)
        claimed: list[Claimed] = []
        for queue, free in wants.values():
            got = job_store.acquire_jobs(
                conn, queue_rowid=queue.rowid, workspace_id=queue.workspace_id, limit=free, owner=self._owner,
                lease_ms=queue.timeout_ms + self._lease_grace_ms, now=now,
                key_recheck_ms=self._key_recheck_ms, key_ttl_ms=self._key_ttl_ms,
            )
            if got:
                self._emit_if_drained(conn, queue)
            claimed += got
        return _Written(claimed, job_store.next_delayed_at(conn))

    def _emit_if_drained(self, conn: sqlite3.Connection, queue: Queue) -> None:
        """`queue.drained` when this claim took the queue's last waiting job (checked only if anyone listens)."""
        events = self._core.events
        if events.wants(queue.workspace_id, "queue.drained") and not job_store.has_waiting(conn, queue.rowid):
            events.emit(conn, queue.workspace_id, "queue.drained", {"queueName": queue.name})

    async def _deliver(self, queue: Queue, job: Claimed) -> None:
        try:
            outcome = await self._deliverer.deliver(queue, job)
            self._count(queue, outcome)
            self._finished.append((queue, self._settlement(queue, job, outcome)))
        except Exception:
            # Nothing to record: the lease runs out and the job is delivered again.
            log.exception("delivery crashed", extra={"job_id": job.id})
            self._inflight[queue.rowid] -= 1
        finally:
            self._wake.set()

    def _count(self, queue: Queue, outcome: Outcome) -> None:
        metrics = self._core.metrics
        key = (queue.name, outcome.outcome)
        if (counter := self._counters.get(key)) is None:
            counter = self._counters[key] = metrics.deliveries.labels(*key)
        if (histogram := self._counters.get((queue.name, ""))) is None:
            histogram = self._counters[(queue.name, "")] = metrics.delivery_seconds.labels(queue.name)
        counter.inc()
        histogram.observe(outcome.duration_ms / 1000)

    def _settlement(self, queue: Queue, job: Claimed, outcome: Outcome) -> Settlement:
        now = self._core.clock.now_ms()
        attempt = Attempt(
            attempt=job.attempt, at=now - outcome.duration_ms, duration_ms=outcome.duration_ms,
            status=outcome.status, outcome=outcome.outcome, error=outcome.error,
        )
        if outcome.ok:
            return Settlement(claimed=job, attempt=attempt, state=JobState.COMPLETED, at=now, result=outcome.result)
        reason = outcome.error or outcome.outcome
        if job.attempt >= job.max_attempts:
            return Settlement(claimed=job, attempt=attempt, state=JobState.FAILED, at=now, reason=reason)
        delay = backoff_ms(queue.backoff_type, queue.backoff_delay_ms, job.attempt)
        retry_at = now + (outcome.retry_after_ms if outcome.retry_after_ms is not None else delay)
        state = JobState.DELAYED if retry_at > now else JobState.WAITING
        return Settlement(claimed=job, attempt=attempt, state=state, at=now, reason=reason, retry_at=retry_at)

    async def _settle_one_by_one(self, finished: list[Finished]) -> None:
        """After a failed group: each outcome in its own write, so one bad outcome cannot sink the others."""
        results = await asyncio.gather(
            *(self._core.db.write(partial(self._settle, finished=[f])) for f in finished), return_exceptions=True
        )
        for (_, settlement), result in zip(finished, results):
            if isinstance(result, BaseException):
                log.error("delivery bookkeeping failed", extra={"job_id": settlement.claimed.id, "error": str(result)})

    def _settle(self, conn: sqlite3.Connection, finished: list[Finished]) -> None:
        """Apply the outcomes; observers and events run for exactly the jobs whose lease still held."""
        queues = {id(settlement): queue for queue, settlement in finished}
        for settlement in job_store.settle_jobs(conn, [settlement for _, settlement in finished]):
            self._after_settled(conn, queues[id(settlement)], settlement)

    def _after_settled(self, conn: sqlite3.Connection, queue: Queue, s: Settlement) -> None:
        terminal = s.state in (JobState.COMPLETED, JobState.FAILED)
        for observer in self._core.attempt_observers:
            observer(conn, queue, s.claimed, s.attempt, terminal)
        if s.state == JobState.COMPLETED:
            self._emit(conn, queue, "job.completed", {
                "jobId": s.claimed.id, "queueName": queue.name, "result": msgspec.Raw(s.result or b"null"),
                "attempts": s.claimed.attempt, "completedAt": iso_from_ms(s.at),
            })
        elif s.state == JobState.FAILED:
            self._emit(conn, queue, "job.failed", {
                "jobId": s.claimed.id, "queueName": queue.name, "failReason": s.reason, "attempts": s.claimed.attempt,
                "failedAt": iso_from_ms(s.at),
            })

    def _emit(self, conn: sqlite3.Connection, queue: Queue, event_type: str, data: dict[str, Any]) -> None:
        if self._core.events.wants(queue.workspace_id, event_type):  # skip building the event nobody hears
            self._core.events.emit(conn, queue.workspace_id, event_type, data)


async def _finish_or_cancel(tasks: set[asyncio.Task[None]], seconds: float) -> None:
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)

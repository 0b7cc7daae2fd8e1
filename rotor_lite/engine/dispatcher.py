"""The dispatcher: claims due jobs up to each queue's free slots and delivers them.

It sleeps until woken (a job was enqueued, a delivery finished, a queue changed)
or until the next delayed job is due, with a poll interval as the safety net.
Outcomes are written back through the writer, which groups them into one commit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections import defaultdict

import msgspec

from rotor_lite.clock import iso_from_ms
from rotor_lite.engine.backoff import backoff_ms
from rotor_lite.engine.delivery import Deliverer, Outcome
from rotor_lite.models import Attempt, Claimed, Queue, QueueState
from rotor_lite.services.core import Core
from rotor_lite.store import jobs as job_store

log = logging.getLogger("rotor_lite.dispatcher")


class Dispatcher:
    """Claims and delivers jobs; `stop()` stops claiming and waits for deliveries in flight."""

    def __init__(self, core: Core, deliverer: Deliverer) -> None:
        self._core = core
        self._deliverer = deliverer
        self._owner = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._wake = asyncio.Event()
        self._inflight: dict[int, int] = defaultdict(int)
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
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
        """Stop claiming, let deliveries in flight finish (bounded), then cancel the rest."""
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=drain_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self) -> None:
        next_due: int | None = None
        while not self._stopping:
            await self._sleep_until(next_due)
            try:
                next_due = await self._claim_and_deliver()
            except Exception:
                log.exception("claim failed; retrying after the poll interval")
                next_due = None

    async def _sleep_until(self, next_due: int | None) -> None:
        wait_ms = self._poll_ms
        if next_due is not None:
            wait_ms = max(0, min(wait_ms, next_due - self._core.clock.now_ms()))
        if wait_ms > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), wait_ms / 1000)
            except asyncio.TimeoutError:
                pass
        self._wake.clear()

    async def _claim_and_deliver(self) -> int | None:
        wants = self._free_slots()
        now = self._core.clock.now_ms()
        claimed, next_due = await self._core.db.write(lambda conn: self._claim(conn, wants, now))
        for job in claimed:
            queue = self._core.queues.by_rowid(job.queue_id)
            if queue is None:
                continue
            self._inflight[queue.rowid] += 1
            task = asyncio.create_task(self._deliver(queue, job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return next_due

    def _free_slots(self) -> dict[int, tuple[Queue, int]]:
        wants = {}
        for queue in self._core.queues.all():
            if queue.state != QueueState.ACTIVE or not queue.callback_url:
                continue
            free = queue.concurrency - self._inflight[queue.rowid]
            if free > 0:
                wants[queue.rowid] = (queue, free)
        return wants

    def _claim(self, conn: sqlite3.Connection, wants: dict[int, tuple[Queue, int]], now: int) -> tuple[list[Claimed], int | None]:
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
        return claimed, job_store.next_delayed_at(conn)

    def _emit_if_drained(self, conn: sqlite3.Connection, queue: Queue) -> None:
        """`queue.drained` when this claim took the queue's last waiting job (checked only if anyone listens)."""
        events = self._core.events
        if events.wants(queue.workspace_id, "queue.drained") and not job_store.has_waiting(conn, queue.rowid):
            events.emit(conn, queue.workspace_id, "queue.drained", {"queueName": queue.name})

    async def _deliver(self, queue: Queue, job: Claimed) -> None:
        try:
            outcome = await self._deliverer.deliver(queue, job)
            await self._record(queue, job, outcome)
        except Exception:
            log.exception("delivery bookkeeping failed", extra={"job_id": job.id})
        finally:
            self._inflight[queue.rowid] -= 1
            self._wake.set()

    async def _record(self, queue: Queue, job: Claimed, outcome: Outcome) -> None:
        metrics = self._core.metrics
        metrics.deliveries.labels(queue.name, outcome.outcome).inc()
        metrics.delivery_seconds.labels(queue.name).observe(outcome.duration_ms / 1000)
        now = self._core.clock.now_ms()
        attempt = Attempt(
            attempt=job.attempt, at=now - outcome.duration_ms, duration_ms=outcome.duration_ms,
            status=outcome.status, outcome=outcome.outcome, error=outcome.error,
        )
        if outcome.ok:
            await self._core.db.write(lambda conn: self._complete(conn, queue, job, attempt, outcome.result, now))
            return
        retry_at = None
        if job.attempt < job.max_attempts:
            delay = backoff_ms(queue.backoff_type, queue.backoff_delay_ms, job.attempt)
            retry_at = now + (outcome.retry_after_ms if outcome.retry_after_ms is not None else delay)
        reason = outcome.error or outcome.outcome
        await self._core.db.write(lambda conn: self._fail(conn, queue, job, attempt, reason, retry_at, now))

    def _complete(
        self, conn: sqlite3.Connection, queue: Queue, job: Claimed, attempt: Attempt, result: bytes | None, now: int
    ) -> None:
        if job_store.complete_job(conn, job, attempt, result, now):
            self._observe(conn, queue, job, attempt, terminal=True)
            self._core.events.emit(conn, queue.workspace_id, "job.completed", {
                "jobId": job.id, "queueName": queue.name, "result": msgspec.Raw(result or b"null"),
                "attempts": job.attempt, "completedAt": iso_from_ms(now),
            })

    def _fail(
        self, conn: sqlite3.Connection, queue: Queue, job: Claimed, attempt: Attempt, reason: str,
        retry_at: int | None, now: int,
    ) -> None:
        if not job_store.fail_attempt(conn, job, attempt, reason, retry_at, now):
            return
        self._observe(conn, queue, job, attempt, terminal=retry_at is None)
        if retry_at is None:
            self._core.events.emit(conn, queue.workspace_id, "job.failed", {
                "jobId": job.id, "queueName": queue.name, "failReason": reason, "attempts": job.attempt,
                "failedAt": iso_from_ms(now),
            })

    def _observe(self, conn: sqlite3.Connection, queue: Queue, job: Claimed, attempt: Attempt, *, terminal: bool) -> None:
        for observer in self._core.attempt_observers:
            observer(conn, queue, job, attempt, terminal)

"""The dispatcher: claims due jobs up to each queue's free slots and delivers them.

Every write is one op of the dispatcher's loop, run in the writer's group commit: it
records each delivery outcome that came in since the previous op, then claims jobs for
the free slots, the slots of those outcomes included. So a slot is reused only once its
outcome is committed, and the claim that reuses it shares that commit. The op picks up
outcomes when the writer runs it, not when it is queued, and a second op may wait in
the writer's queue behind the running one: outcomes that arrive during a commit are
taken by the very next group instead of waiting for the event loop to hear of the
commit first. Slot counts therefore live with the ops, under a lock.

The loop sleeps until woken (a job was enqueued, a delivery finished, a queue changed)
or until the next delayed job is due, with a poll interval as the safety net.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter, deque
from functools import partial
from typing import Any, TypeVar

from rotor_lite.backoff import parse_retry_after
from rotor_lite.engine.delivery import Deliverer, Outcome, Ticket
from rotor_lite.files import node_id
from rotor_lite.models import Attempt, Claimed, Queue, QueueState, Settlement
from rotor_lite.services import leases
from rotor_lite.services.cluster import ConcurrencyShare
from rotor_lite.services.core import Core
from rotor_lite.services.leases import Finished
from rotor_lite.store import jobs as job_store
from rotor_lite.store.contract import Conn

log = logging.getLogger("rotor_lite.dispatcher")

T = TypeVar("T")
_PIPELINE = 2  # ops queued or running in the writer at once: the running one and the next


class _Op:
    """One write of the loop: what it took, and its slot changes once its SQL has run."""

    def __init__(self, claim: bool) -> None:
        self.claim = claim
        self.finished: list[Finished] = []
        self.freed: Counter[int] = Counter()
        self.taken: Counter[int] = Counter()
        self.applied = False
        self.claimed: list[Claimed] = []
        # Only an op that claimed read the next due time. Another op must not pass on the loop's value
        # as it was when the writer ran it: a claiming op's newer value may still be on its way to the
        # loop, and the stale one, already past, would keep the loop writing without pause.
        self.looked_ahead = False
        self.next_due: int | None = None


class Dispatcher:
    """Claims and delivers jobs; `stop()` stops claiming and waits for deliveries in flight."""

    def __init__(self, core: Core, deliverer: Deliverer) -> None:
        self._core = core
        self._deliverer = deliverer
        self._owner = leases.lease_owner(core.settings.data_path)
        self._share = ConcurrencyShare(node_id(core.settings.data_path))
        self._wake = asyncio.Event()
        self._finished: deque[Finished] = deque()  # appended by the event loop, taken by the writer thread
        self._released: deque[int] = deque()  # queue rowids of slots given back without an outcome
        self._slots: Counter[int] = Counter()  # slots held per queue rowid
        self._lock = threading.Lock()  # guards _slots
        self._claim_requests = 0  # bumped by the event loop
        self._claims_seen = 0  # by the writer thread
        self._next_due: int | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self._writing = 0  # ops queued or running in the writer
        self._in_flight = 0
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._metric_children: dict[tuple[Any, ...], Any] = {}
        settings = core.settings.dispatch
        self._poll_ms = settings.ms("poll_interval")
        self._lease_grace_ms = settings.ms("lease")

    async def __aenter__(self) -> Dispatcher:
        self._loop_task = asyncio.create_task(self._run(), name="rotor-dispatcher")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(self._core.settings.server.ms("drain_timeout") / 1000)

    def wake(self) -> None:
        self._claim_requests += 1
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def stop(self, drain_seconds: float) -> None:
        """Stop claiming, let deliveries in flight finish and be recorded (bounded), then cancel the rest."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await _finish_or_cancel({self._loop_task}, drain_seconds)
        await _finish_or_cancel(set(self._writes), drain_seconds)
        await self._deliverer.cancel()

    # Event loop side ------------------------------------------------------------------

    async def _run(self) -> None:
        # After stop(): no more claims, but the loop keeps recording outcomes until no slot is held.
        while not self._stopping or self._writing or self._holding():
            if self._writing >= _PIPELINE:
                await self._wake.wait()  # an op finishing wakes us
                self._wake.clear()
                continue
            await self._sleep_until(None if self._stopping else self._next_due)
            if self._has_work():
                self._writing += 1
                self._spawn(self._writes, self._write(claim=not self._stopping))

    def _holding(self) -> bool:
        with self._lock:
            return any(count > 0 for count in self._slots.values())

    def _has_work(self) -> bool:
        claim = self._claim_requests != self._claims_seen and not self._stopping
        return claim or bool(self._finished or self._released)

    async def _sleep_until(self, next_due: int | None) -> None:
        wait_ms = self._poll_ms
        if next_due is not None:
            wait_ms = max(0, min(wait_ms, next_due - self._core.clock.now_ms()))
        if not (wait_ms > 0 and await _woken(self._wake, wait_ms)):
            self._claim_requests += 1  # a delayed job is due, or the poll interval passed
        self._wake.clear()

    async def _write(self, *, claim: bool) -> None:
        op = _Op(claim)
        try:
            await self._core.db.write(partial(self._run_op, op=op))
        except Exception:
            log.exception("recording outcomes and claiming failed; recording the outcomes one by one")
            self._undo(op)
            await self._settle_one_by_one(op.finished)
            with self._lock:
                self._slots.subtract(op.freed)  # recorded now, or given up on: their leases run out
            # The database may be gone (PostgreSQL restarting): try again after a poll, not at once.
            await asyncio.sleep(self._poll_ms / 1000)
        else:
            if op.looked_ahead:
                self._next_due = op.next_due
            self._start(op.claimed)
        finally:
            self._writing -= 1  # here, not in a done callback: the loop must see it when it wakes
            self._wake.set()

    def _undo(self, op: _Op) -> None:
        """After a failed op: its claims did not happen, and its outcomes still hold their slots."""
        if op.applied:
            with self._lock:
                self._slots.subtract(op.taken)
                self._slots.update(op.freed)

    def _start(self, claimed: list[Claimed]) -> None:
        tickets = []
        for job in claimed:
            queue = self._core.queues.by_rowid(job.queue_id)
            if queue is None:  # deleted meanwhile: the lease runs out
                self._released.append(job.queue_id)
                continue
            tickets.append((queue, job))
        self._in_flight += len(tickets)
        self._deliverer.start(tickets, self._delivered, self._lost)

    def _spawn(self, tasks: set[asyncio.Task[None]], coro: Any) -> None:
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _delivered(self, ticket: Ticket, outcome: Outcome) -> None:
        queue, job = ticket
        try:
            self._count(queue, outcome)
            self._finished.append((queue, self._settlement(queue, job, outcome)))
        except Exception:
            # Every error of an attempt is an outcome, so only a bug in the bookkeeping lands here.
            # Nothing to record: the lease runs out and the job is delivered again.
            log.exception("delivery bookkeeping crashed", extra={"job_id": job.id})
            self._released.append(queue.rowid)
        self._ended()

    def _lost(self, ticket: Ticket) -> None:
        """A helper died holding the job: its slot is free again, and its lease brings it back."""
        self._released.append(ticket[0].rowid)
        self._ended()

    def _ended(self) -> None:
        self._in_flight -= 1
        if self._writing < _PIPELINE:  # else the op that finishes next wakes the loop anyway
            self._wake.set()

    def _count(self, queue: Queue, outcome: Outcome) -> None:
        metrics = self._core.metrics
        self._child(metrics.deliveries, queue, outcome.outcome).inc()
        self._child(metrics.delivery_seconds, queue).observe(outcome.duration_ms / 1000)

    def _child(self, metric: Any, queue: Queue, *labels: str) -> Any:
        """The metric's child for the queue and these labels, looked up once: `labels()` costs a lock and a
        dict per call. Keyed by rowid: a queue deleted and created again under its name is a new series."""
        key = (id(metric), queue.rowid, *labels)
        child = self._metric_children.get(key)
        if child is None:
            child = self._metric_children[key] = metric.labels(queue.workspace_id, queue.name, *labels)
        return child

    def _settlement(self, queue: Queue, job: Claimed, outcome: Outcome) -> Settlement:
        now = self._core.clock.now_ms()
        attempt = Attempt(
            attempt=job.attempt, at=now - outcome.duration_ms, duration_ms=outcome.duration_ms,
            status=outcome.status, outcome=outcome.outcome, error=outcome.error,
        )
        retry_after_ms = None if outcome.retry_after is None else parse_retry_after(outcome.retry_after, now)
        return leases.settlement(queue, job, attempt, now, result=outcome.result, retry_after_ms=retry_after_ms)

    async def _settle_one_by_one(self, finished: list[Finished]) -> None:
        """After a failed op: each outcome in its own write, so one bad outcome cannot sink the others."""
        results = await asyncio.gather(
            *(self._core.db.write(partial(self._settle, finished=[f])) for f in finished), return_exceptions=True
        )
        for (_, settlement), result in zip(finished, results):
            if isinstance(result, BaseException):
                log.error("delivery bookkeeping failed", extra={"job_id": settlement.claimed.id, "error": str(result)})

    # Writer thread side -----------------------------------------------------------------

    def _run_op(self, conn: Conn, op: _Op) -> None:
        op.finished = _drain(self._finished)
        op.freed = Counter(queue.rowid for queue, _ in op.finished)
        op.freed.update(_drain(self._released))
        requests, now = self._claim_requests, self._core.clock.now_ms()
        self._settle(conn, op.finished)
        if op.claim and (op.freed or requests != self._claims_seen):
            self._claims_seen = requests
            self._share.refresh(conn, now)
            wants = self._free_slots(op.freed)
            op.claimed, op.next_due = self._claim(conn, wants, now), leases.next_due(self._core, conn, now)
            op.looked_ahead = True
        op.taken = Counter(job.queue_id for job in op.claimed)
        with self._lock:  # only now: an op that raised above changed no slot
            self._slots.subtract(op.freed)
            self._slots.update(op.taken)
            op.applied = True

    def _free_slots(self, freed: Counter[int]) -> dict[int, tuple[Queue, int]]:
        wants = {}
        with self._lock:
            held = {rowid: count - freed[rowid] for rowid, count in self._slots.items()}
        for queue in self._core.queues.all():
            if queue.state != QueueState.ACTIVE or not queue.callback_url:
                continue
            free = self._share.of(queue.concurrency) - held.get(queue.rowid, 0)
            if free > 0:
                wants[queue.rowid] = (queue, free)
        return wants

    def _claim(self, conn: Conn, wants: dict[int, tuple[Queue, int]], now: int) -> list[Claimed]:
        job_store.promote_due(conn, now)
        claimed: list[Claimed] = []
        for queue, free in wants.values():
            lease_ms = queue.timeout_ms + self._lease_grace_ms
            claimed += leases.claim_jobs(self._core, conn, queue, free, owner=self._owner, lease_ms=lease_ms, now=now)
        return claimed

    def _settle(self, conn: Conn, finished: list[Finished]) -> None:
        leases.settle(self._core, conn, finished)


async def _woken(event: asyncio.Event, wait_ms: int) -> bool:
    try:
        async with asyncio.timeout(wait_ms / 1000):  # cheaper than wait_for, which wraps the wait in a task
            await event.wait()
    except TimeoutError:
        return False
    return True


def _drain(items: deque[T]) -> list[T]:
    """Everything in `items` now; safe against appends from the other thread meanwhile."""
    taken = []
    while True:
        try:
            taken.append(items.popleft())
        except IndexError:
            return taken


async def _finish_or_cancel(tasks: set[asyncio.Task[None]], seconds: float) -> None:
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)

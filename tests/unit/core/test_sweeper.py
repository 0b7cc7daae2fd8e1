"""The sweeper in a running process: a hung delivery's lease runs out and the job is delivered again.

The real dispatcher, sweeper, store and webhook outbox on a SQLite file, with a fake clock; only the
HTTP deliverer is replaced, by one whose first delivery hangs until the test lets it answer.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from rotor_lite.clock import SystemClock
from rotor_lite.engine.delivery import Deliverer, Outcome
from rotor_lite.engine.dispatcher import Dispatcher
from rotor_lite.engine.sweeper import Sweeper
from rotor_lite.models import Claimed, Job, JobState, Queue
from rotor_lite.schemas import JobCreate, QueueCreate, WebhookCreate
from rotor_lite.services import jobs, queues, webhooks
from rotor_lite.services.core import Core
from rotor_lite.store import jobs as job_store
from tests.helpers import Receiver
from tests.notify_helpers import notify_env

TIMEOUT_S, LEASE_GRACE_MS = 5, 1_000


class FirstDeliveryHangs(Deliverer):
    """The first delivery waits for `answer` (a hung handler, a stuck resolver…); later ones succeed at once."""

    def __init__(self) -> None:
        super().__init__(SystemClock(), allow_private=False, max_connections=1)
        self.answer = asyncio.Event()
        self.calls: list[Claimed] = []

    async def deliver(self, queue: Queue, job: Claimed) -> Outcome:
        self.calls.append(job)
        number = len(self.calls)
        if number == 1:
            await self.answer.wait()
        return Outcome(ok=True, outcome="2xx", status=200, error=None, duration_ms=1, result=b'{"call":%d}' % number)


async def eventually(condition: Callable[[], Any], timeout: float = 5.0) -> None:
    """Poll `condition` (a plain or an async callable) until it is true."""
    async with asyncio.timeout(timeout):
        while not await _value(condition()):
            await asyncio.sleep(0.01)


async def _value(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def job_now(core: Core, queue: Queue, job_id: str) -> Job:
    row = await job_store.get_job(core.db, queue.rowid, job_id)
    assert row is not None
    return job_store.job_from_row(row, queue.name)


async def test_a_hung_delivery_is_put_back_counted_announced_and_delivered_again(tmp_path: Path, receiver: Receiver) -> None:
    # No poll: only a wake-up (the enqueue, an outcome, the sweeper) makes the dispatcher claim.
    async with notify_env(tmp_path, dispatch__lease=f"{LEASE_GRACE_MS}ms", dispatch__poll_interval="1h") as env:
        core, principal = env.core, env.principal
        await webhooks.create_webhook(core, principal, WebhookCreate(url=receiver.url("/events"), event_types=["job.stalled"]))
        await queues.create_queue(core, principal, QueueCreate(
            name="hangs", concurrency=2, timeout_seconds=TIMEOUT_S, callback_url="https://hooks.example.com/never-called"))
        queue = core.queues.get(principal.workspace_id, "hangs")
        deliverer = FirstDeliveryHangs()
        async with Dispatcher(core, cast(Deliverer, deliverer)) as dispatcher:
            core.on_jobs_ready = dispatcher.wake
            sweeper = Sweeper(core, dispatcher.wake)  # not entered: the test runs its passes by hand
            try:
                job_id = (await jobs.enqueue(core, principal, "hangs", JobCreate(payload={"a": 1}), None)).job.id
                await eventually(lambda: len(deliverer.calls) == 1)

                env.clock.advance(TIMEOUT_S * 1000 + LEASE_GRACE_MS - 1)  # the lease still holds
                await sweeper.sweep()
                assert (await job_now(core, queue, job_id)).state == JobState.ACTIVE
                env.clock.advance(1)
                await sweeper.sweep()

                await eventually(lambda: len(deliverer.calls) == 2)  # the sweeper woke the dispatcher
                await eventually(lambda: _state_is(core, queue, job_id, JobState.COMPLETED))
            finally:
                deliverer.answer.set()  # the hung delivery answers at last: its lease is gone, so it changes nothing
        done = await job_now(core, queue, job_id)  # the dispatcher has stopped: every outcome is recorded
        log = await job_store.attempts_of(core.db, done.rowid)
        stalled_metric = core.metrics.registry.get_sample_value("rotor_jobs_stalled_total")
        await env.run()

    assert [job.id for job in deliverer.calls] == [job_id, job_id]
    assert (done.state, done.stalled, done.attempts, done.result) == (JobState.COMPLETED, 1, 1, b'{"call":2}')
    assert [a.attempt for a in log] == [1]
    assert stalled_metric == 1
    [event] = receiver.for_path("/events")
    assert (event.json()["type"], event.json()["data"]) == ("job.stalled", {"jobId": job_id, "queueName": "hangs"})


async def _state_is(core: Core, queue: Queue, job_id: str, state: JobState) -> bool:
    return (await job_now(core, queue, job_id)).state == state

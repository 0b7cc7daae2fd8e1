"""`RotorWorker`: process the jobs of a pull queue (a queue without a `callback_url`) in your own process.

    import asyncio
    from rotor_lite.sdk import RotorWorker

    async def handle(job):                  # job.id, job.data (the payload), job.attempt, job.tags
        await send_email(job.data["leadId"])
        return {"sent": True}               # the job's result

    asyncio.run(RotorWorker(queue="outreach", processor=handle, concurrency=5).run())

While it has free slots the worker holds one lease request open (a long poll), so a new job reaches it
within milliseconds and an idle worker costs one request per `wait_seconds`. It heartbeats each job's
lease while the processor runs, then completes the job with the processor's return value, or fails it
with the exception the processor raised (retried after the queue's backoff; `NonRetriableError` fails it
for good). Outcomes travel together: one request carries every outcome that came in while the previous
one was under way. The worker retries its own transient HTTP errors with backoff, and retries an outcome
until the server acknowledges it or says the lease is gone.

SIGTERM or SIGINT (or `stop()`) drains it: it leases nothing more, lets the jobs it holds finish within
`drain_timeout` seconds, sends their outcomes (for up to `lease_seconds` more if the server is
unreachable), and `run()` returns. A job still running then is cancelled; its lease runs out
on the server, which gives it to another worker. Delivery is at least once: make the processor idempotent
(`job.id` is the natural idempotency key of whatever it does).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from rotor_lite.sdk._client import AsyncRotor
from rotor_lite.sdk.errors import NonRetriableError, RotorAPIError, RotorConflict, RotorError

__all__ = ["Job", "RotorWorker"]

log = logging.getLogger("rotor_lite.worker")
_RETRY_FIRST, _RETRY_MOST = 0.2, 5.0  # seconds between tries of a request that failed for a transient reason
_ERROR_CHARS = 2_000
_OUTCOMES_PER_REQUEST = 100


@dataclass(frozen=True, slots=True)
class Job:
    """A leased job, as the processor gets it; `data` is its payload."""

    id: str
    data: Any
    attempt: int
    tags: list[str]
    queue: str
    lease_token: str = field(repr=False)
    lease_expires_at: str


Processor = Callable[[Job], Awaitable[Any]] | Callable[[Job], Any]


class RotorWorker:
    """Leases the jobs of `queue` and runs `processor(job)` on each, `concurrency` at a time.

    `processor` is an async function (a plain function runs in a thread). `api_key` defaults to
    `$ROTOR_API_KEY`, `base_url` to `$ROTOR_API_URL`, `workspace` (a team key's) to `$ROTOR_WORKSPACE`.
    `lease_seconds` is how long the server waits for a heartbeat before giving a job to another worker.
    """

    def __init__(
        self,
        queue: str,
        processor: Processor,
        *,
        concurrency: int = 5,
        drain_timeout: float = 30.0,
        api_key: str | None = None,
        base_url: str | None = None,
        workspace: str | None = None,
        lease_seconds: float = 30.0,
        wait_seconds: float = 20.0,
        handle_signals: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not 0.1 <= lease_seconds <= 3600 or not 0 <= wait_seconds <= 30:
            raise ValueError("lease_seconds must be 0.1–3600 and wait_seconds 0–30")
        self.queue = queue
        self.concurrency = concurrency
        self.drain_timeout = drain_timeout
        self._processor = processor
        self._client_options: dict[str, Any] = {
            "api_key": api_key, "base_url": base_url, "workspace": workspace, "transport": transport,
            "timeout": httpx.Timeout(wait_seconds + 15.0, connect=10.0),  # a long poll answers within wait_seconds
        }
        self._lease = _milliseconds(lease_seconds)
        self._wait = _milliseconds(wait_seconds)
        self._lease_seconds = lease_seconds
        self._heartbeat_every = lease_seconds / 3
        self._handle_signals = handle_signals
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._outcomes: _Outcomes

    def stop(self) -> None:
        """Begin the drain (what SIGTERM and SIGINT do): lease no more jobs, finish those held, return from run()."""
        if not self._stopping.is_set():
            log.info("worker stopping: no more leases, draining the jobs in flight",
                     extra={"queue": self.queue, "in_flight": len(self._tasks)})
        self._stopping.set()

    async def run(self) -> None:
        """Process jobs until stopped, then drain. Raises RotorAPIError when the server refuses the worker
        for good (a wrong key, an unknown queue, a queue with a callback URL)."""
        async with AsyncRotor(**self._client_options) as client:
            self._outcomes = _Outcomes(client, self.queue)
            with self._signals():
                try:
                    await self._lease_until_stopped(client)
                finally:
                    await self._drain()
                    await self._outcomes.close(timeout=self._lease_seconds)
        log.info("worker stopped", extra={"queue": self.queue})

    # Leasing ------------------------------------------------------------------------------------

    async def _lease_until_stopped(self, client: AsyncRotor) -> None:
        pause = _RETRY_FIRST
        while not self._stopping.is_set():
            if len(self._tasks) >= self.concurrency:
                await self._first_of(self._slot_freed.wait())
                self._slot_freed.clear()
                continue
            try:
                leased = await self._first_of(client.jobs.lease(
                    self.queue, max=self.concurrency - len(self._tasks), lease_seconds=self._lease,
                    wait_seconds=self._wait,
                ))
            except (RotorError, httpx.HTTPError) as exc:
                if not _transient(exc):
                    log.error("the server refuses this worker", extra={"queue": self.queue, "error": str(exc)})
                    raise
                log.warning("leasing failed, trying again", extra={"queue": self.queue, "error": str(exc), "in": pause})
                await self._first_of(asyncio.sleep(_retry_after(exc, pause)))
                pause = min(pause * 2, _RETRY_MOST)
                continue
            pause = _RETRY_FIRST
            for raw in (leased or {}).get("data", []):
                self._start(client, _job(self.queue, raw))

    async def _first_of(self, work: Awaitable[Any]) -> Any:
        """`work`'s result, or None when the worker is stopped first (then `work` is cancelled)."""
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if task.done():  # even when stopped meanwhile: jobs already leased are ours to run
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, RotorError, httpx.HTTPError):
            await task
        return None

    def _start(self, client: AsyncRotor, job: Job) -> None:
        task = asyncio.create_task(self._process(client, job), name=f"rotor-job-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slot_freed.set()

    # One job ------------------------------------------------------------------------------------

    async def _process(self, client: AsyncRotor, job: Job) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(client, job))
        try:
            try:
                result = await self._call_processor(job)
                msgspec.json.encode(result)  # a result the API cannot carry fails the job here, not in the report
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("job failed", extra={"queue": self.queue, "job_id": job.id, "attempt": job.attempt,
                                                 "error": _error_text(exc)})
                outcome = {"error": _error_text(exc), "retry": not isinstance(exc, NonRetriableError)}
            else:
                outcome = {"result": result}
            await self._outcomes.send({"id": job.id, "lease_token": job.lease_token, **outcome})
        finally:
            heartbeat.cancel()

    async def _call_processor(self, job: Job) -> Any:
        if inspect.iscoroutinefunction(self._processor):
            return await self._processor(job)
        return await asyncio.to_thread(self._processor, job)

    async def _heartbeat(self, client: AsyncRotor, job: Job) -> None:
        """Extend the lease every third of it; a lease the server no longer holds for us ends the heartbeats."""
        while True:
            await asyncio.sleep(self._heartbeat_every)
            try:
                await client.jobs.heartbeat(self.queue, job.id, job.lease_token, lease_seconds=self._lease)
            except RotorConflict:
                log.warning("the job's lease is lost: another worker may run it", extra={"queue": self.queue, "job_id": job.id})
                return
            except (RotorError, httpx.HTTPError) as exc:
                log.warning("heartbeat failed, trying at the next one", extra={"job_id": job.id, "error": str(exc)})

    # Stopping -----------------------------------------------------------------------------------

    async def _drain(self) -> None:
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=self.drain_timeout)
        if late:
            log.warning("drain timeout: cancelling jobs still running (their leases run out, they run again)",
                        extra={"queue": self.queue, "jobs": len(late)})
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGTERM and SIGINT stop the worker (when it runs in the main thread and was asked to)."""
        installed = []
        if self._handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not the main thread
                    loop.add_signal_handler(sig, self.stop)
                    installed.append(sig)
        try:
            yield
        finally:
            for sig in installed:
                asyncio.get_running_loop().remove_signal_handler(sig)


class _Outcomes:
    """Finished jobs' outcomes on their way to the server: one request carries every outcome that came in
    while the previous request was under way (up to 100), and is retried until it is answered."""

    def __init__(self, client: AsyncRotor, queue: str) -> None:
        self._client, self._queue = client, queue
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def send(self, outcome: dict[str, Any]) -> None:
        """Returns once the server has taken the outcome (or refused it for good)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((outcome, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_pending())
        await asyncio.shield(future)  # a job cancelled at the drain timeout leaves its outcome on its way

    async def close(self, timeout: float) -> None:
        """Let the outcomes still on their way reach the server for up to `timeout` seconds (the lease:
        after it the server gives their jobs to other workers anyway), then give up on them."""
        if self._sender is None or self._sender.done():
            return
        _, late = await asyncio.wait({self._sender}, timeout=timeout)
        if late:
            log.error("the server did not take the outcomes of finished jobs before their leases ran out",
                      extra={"queue": self._queue, "jobs": len(self._pending)})
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)

    async def _send_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:_OUTCOMES_PER_REQUEST], self._pending[_OUTCOMES_PER_REQUEST:]
            try:
                answers = await self._post([outcome for outcome, _ in batch])
                for (outcome, _), answer in zip(batch, answers):
                    if answer.get("error"):
                        log.warning("the job's lease was gone when it finished: another worker runs it again",
                                    extra={"queue": self._queue, "job_id": outcome["id"]})
            finally:  # whatever happened, no job waits for its outcome forever
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def _post(self, outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        pause = _RETRY_FIRST
        while True:
            try:
                answer = await self._client.jobs.report(self._queue, outcomes)
                return list(answer["data"])
            except (RotorError, httpx.HTTPError) as exc:
                if not _transient(exc):
                    log.error("the server refused the jobs' outcomes", extra={"queue": self._queue, "error": str(exc)})
                    return [{} for _ in outcomes]
                log.warning("reporting outcomes failed, trying again", extra={"queue": self._queue, "error": str(exc),
                                                                               "in": pause})
                await asyncio.sleep(_retry_after(exc, pause))
                pause = min(pause * 2, _RETRY_MOST)


def _job(queue: str, raw: dict[str, Any]) -> Job:
    return Job(
        id=raw["id"], data=raw["payload"], attempt=raw["attempt"], tags=raw.get("tags", []), queue=queue,
        lease_token=raw["leaseToken"], lease_expires_at=raw["leaseExpiresAt"],
    )


def _transient(exc: Exception) -> bool:
    """Worth trying again: the server unreachable, overloaded (429, 503) or failing (5xx)."""
    if isinstance(exc, RotorAPIError):
        return exc.status == 429 or exc.status >= 500
    return True


def _retry_after(exc: Exception, pause: float) -> float:
    hinted = exc.retry_after if isinstance(exc, RotorAPIError) else None
    return max(pause, hinted or 0.0)


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:_ERROR_CHARS]


def _milliseconds(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"

"""Delivery, the server's side: claimed jobs made ready to send, and handed to whoever sends.

The sending half (engine.sending: sign the exact body bytes, POST them, classify the answer) runs in
this process with `[delivery] processes = 0`, or in delivery helpers (engine.pool). This side keeps
what must stay with the server: `${{ secrets.NAME }}` templates are resolved here (the vault never
leaves the process; a helper sees the resolved values of the deliveries it sends, in memory only),
and the signed timestamp comes from the server's clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

import msgspec

from rotor_lite.clock import Clock
from rotor_lite.engine.pool import LOST, HelperPool
from rotor_lite.engine.sending import (
    Answer, Delivery, Outcome, Post, Sender, SenderSettings, echo_forms, failure, internal_error, log_internal_error,
)
from rotor_lite.logs import LogFormat
from rotor_lite.models import Claimed, DeliveryHelper, Queue
from rotor_lite.services import secrets as vault
from rotor_lite.services.hooks import SecretSource
from rotor_lite.services.secrets import UnknownSecret

__all__ = ["Deliverer", "Outcome", "Ticket"]

log = logging.getLogger("rotor_lite.delivery")
Ticket = tuple[Queue, Claimed]
Done = Callable[[Ticket, Outcome], None]
Lost = Callable[[Ticket], None]

_MARKER = vault.MARKER.encode()


def _templated(url: str | None, headers: dict[str, str], body: bytes) -> bool:
    """A cheap test that keeps the hot path free of template work when there is none."""
    return _MARKER in body or (url is not None and vault.MARKER in url) or any(
        vault.MARKER in value for value in headers.values()
    )


class Deliverer:
    """Sends callbacks and other POSTs: in this process, or through `processes` helper processes."""

    def __init__(
        self, clock: Clock, *, allow_private: bool, max_connections: int, secrets: SecretSource | None = None,
        max_notifications: int = 64, processes: int = 0, log_format: LogFormat = "text",
    ) -> None:
        self._clock = clock
        self._secrets = secrets
        self._settings = SenderSettings(
            allow_private=allow_private, max_connections=max_connections, max_notifications=max_notifications
        )
        self._processes, self._log_format = processes, log_format
        self._sender: Sender | None = None
        self._pool: HelperPool | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Deliverer:
        if self._processes > 0:
            level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
            self._pool = await self._stack.enter_async_context(
                HelperPool(self._processes, self._settings, log_level=level, log_format=self._log_format)
            )
        else:
            self._sender = await self._stack.enter_async_context(Sender(self._settings))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cancel()
        await self._stack.aclose()

    def helpers(self) -> list[DeliveryHelper]:
        """Each helper's health; empty when delivery runs in this process."""
        return [] if self._pool is None else self._pool.health()

    def start(self, jobs: list[Ticket], done: Done, lost: Lost) -> None:
        """Send each job to its queue's callback URL; its outcome goes to `done`, or to `lost` when the helper
        holding it dies first (its lease brings it back). Neither is called before `start` returns."""
        if self._pool is None:
            for ticket in jobs:
                self._spawn(self._deliver_here(ticket, done))
            return
        ready = []
        for ticket in jobs:
            queue, job = ticket
            if self._secrets is not None and _templated(queue.callback_url, queue.callback_headers, job.payload):
                self._spawn(self._deliver_templated(ticket, done, lost))
            else:
                ready.append((self._delivery(queue, job, queue.callback_url, queue.callback_headers, job.payload), ticket))
        self._pool.deliver(ready, done, lost)

    async def deliver(self, queue: Queue, job: Claimed) -> Outcome:
        """One job's delivery, awaited; never raises but to be cancelled."""
        started = time.perf_counter()
        delivery = await self._prepared(queue, job, started)
        if isinstance(delivery, Outcome):
            return delivery
        if self._sender is not None:
            return await self._sender.deliver(delivery)
        assert self._pool is not None, "deliverer is not open"
        return await self._pool.deliver_one(delivery) or failure("network", LOST, started)

    async def post(self, post: Post) -> Answer:
        """POST bytes that are not a job's callback (a workflow call, a webhook, an alert)."""
        if self._pool is not None:
            return await self._pool.post(post)
        assert self._sender is not None, "deliverer is not open"
        return await self._sender.post(post)

    async def cancel(self) -> None:
        """Stop the sends this process runs (the leases bring their jobs back)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _deliver_here(self, ticket: Ticket, done: Done) -> None:
        done(ticket, await self.deliver(*ticket))

    async def _deliver_templated(self, ticket: Ticket, done: Done, lost: Lost) -> None:
        delivery = await self._prepared(*ticket, time.perf_counter())
        if isinstance(delivery, Outcome):
            return done(ticket, delivery)
        assert self._pool is not None
        self._pool.deliver([(delivery, ticket)], done, lost)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _prepared(self, queue: Queue, job: Claimed, started: float) -> Delivery | Outcome:
        """The job ready to send, or the failed attempt when it cannot be made ready (an unknown secret)."""
        try:
            return await self._prepare(queue, job)
        except UnknownSecret as exc:
            return failure("error", str(exc), started)
        except Exception as exc:  # a bug or a poison job costs an attempt; raising would redeliver it forever
            outcome = failure("error", internal_error(exc, []), started)
            log_internal_error(job.id, outcome.error, exc)
            return outcome

    async def _prepare(self, queue: Queue, job: Claimed) -> Delivery:
        """The job ready to send, with `${{ secrets.NAME }}` resolved (skipped unless a template is present)."""
        url, headers, body = queue.callback_url, queue.callback_headers, job.payload
        if self._secrets is None or not _templated(url, headers, body):
            return self._delivery(queue, job, url, headers, body)
        names = vault.template_names(url or "").union(*(vault.template_names(v) for v in headers.values()))
        payload = msgspec.json.decode(body) if _MARKER in body else None
        if payload is not None:
            names |= vault.payload_names(payload)
        values = await self._secrets.resolve(queue.workspace_id, names, {"jobId": job.id, "queue": queue.name})
        return self._delivery(
            queue, job,
            None if url is None else vault.substitute(url, values),
            {key: vault.substitute(value, values) for key, value in headers.items()},
            body if payload is None else msgspec.json.encode(vault.substitute_payload(payload, values)),
            echo_forms(list(values.values())),
        )

    def _delivery(self, queue: Queue, job: Claimed, url: str | None, headers: dict[str, str], body: bytes,
                  secrets: list[bytes] | None = None) -> Delivery:
        return Delivery(
            url=url, headers=headers, body=body, job_id=job.id, queue=queue.name, attempt=job.attempt,
            timestamp=self._clock.now_ms() // 1000, signing_secret=queue.callback_secret or "",
            timeout_ms=queue.timeout_ms, secrets=secrets or [],
        )


"""The delivery task: fans the outbox out into deliveries and sends them, with retries.

Its sends go through the one delivery engine (in this process or in the delivery helpers), on
a connection pool of their own, separate from job delivery's, so a slow or dead webhook endpoint
never holds a callback connection or a dispatcher slot: at worst its own deliveries wait. Each
attempt's outcome is written back through the writer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import aiosmtplib
import msgspec

from rotor_lite.engine.delivery import Deliverer
from rotor_lite.engine.sending import Post, Signing
from rotor_lite.services import alerts, webhooks
from rotor_lite.services.core import Core
from rotor_lite.services.events import OutboxSink, QueueErrorObserver
from rotor_lite.services.secrets import SecretValues
from rotor_lite.store import outbox as outbox_store
from rotor_lite.store import webhooks as webhook_store
from rotor_lite.store.outbox import DeliveryRow
from rotor_lite.store.webhooks import WebhookRow
from rotor_lite.store.contract import Conn, is_postgres

log = logging.getLogger("rotor_lite.outbox")
_FAN_OUT_BATCH = 500
_STOP_GRACE_S = 2.0
_HOOK_CACHE_S = 1.0
_SNIPPET_BYTES = 300
_CLAIM_GRACE_MS = 10_000  # a claimed delivery is due again this long after its send would have timed out


def install_notifications(core: Core) -> OutboxSink:
    """Install the outbox event sink, the vault's dispatch-time values and the `queue.error` observer."""
    sink = OutboxSink(core.clock)
    core.events = sink
    core.secret_values = SecretValues(core.db, core.vault, core.clock)
    core.attempt_observers.append(QueueErrorObserver(sink, core.clock))
    return sink


class Attempt(msgspec.Struct, kw_only=True, frozen=True):
    """How one send went; `give_up` when retrying cannot help (the destination is gone)."""

    ok: bool
    status: int | None = None
    error: str | None = None
    give_up: bool = False


class OutboxDelivery:
    """Runs in the server's lifespan; `pump()` and `settle()` let tests drive it step by step."""

    def __init__(self, core: Core, sink: OutboxSink, deliverer: Deliverer, *, run_loop: bool = True) -> None:
        self._core, self._sink, self._deliverer, self._run_loop = core, sink, deliverer, run_loop
        settings = core.settings.webhooks
        self._timeout_ms = settings.ms("timeout")
        self._max, self._per_endpoint = settings.max_in_flight, settings.max_in_flight_per_endpoint
        self._poll_ms = settings.ms("poll_interval")
        self._wake = asyncio.Event()
        self._inflight: dict[int, str] = {}
        self._settled_during_read: set[int] = set()
        self._per_key: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._check_outbox = True
        delays = settings.retry_delays_ms()
        self._probe_ms = next((d for d in delays[1:] if d > 0), self._poll_ms)
        self._down: dict[str, tuple[int, str]] = {}  # unreachable endpoint → (probe it again at, why)
        self._probing: set[str] = set()
        self._hooks: dict[str, tuple[int, float, WebhookRow | None]] = {}

    async def __aenter__(self) -> OutboxDelivery:
        loop = asyncio.get_running_loop()
        def wake_from_writer() -> None:
            loop.call_soon_threadsafe(self._wake.set)

        self._sink.set_waker(wake_from_writer)
        await self._core.db.write(self._sink.load)
        if self._run_loop:
            self._loop_task = asyncio.create_task(self._run(), name="rotor-outbox")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=_STOP_GRACE_S)
            for task in pending:  # still `pending` in the database: sent again after the restart
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                next_due = await self.pump()
            except Exception:
                log.exception("outbox pass failed; retrying after the poll interval")
                next_due = None
            await self._sleep_until(next_due)

    async def _sleep_until(self, next_due: int | None) -> None:
        wait_ms = self._poll_ms
        if next_due is not None:
            wait_ms = max(0, min(wait_ms, next_due - self._core.clock.now_ms()))
        try:
            await asyncio.wait_for(self._wake.wait(), wait_ms / 1000)
        except asyncio.TimeoutError:
            self._check_outbox = True  # the safety net: look even without a signal
        self._wake.clear()

    async def pump(self) -> int | None:
        """One pass: fan out new events, start the due deliveries; returns when the next one is due."""
        notified = self._sink.woken()
        now = self._core.clock.now_ms()
        if notified or self._check_outbox:
            self._check_outbox = False
            while await self._core.db.write(lambda conn: self._fan_out(conn, now)) == _FAN_OUT_BATCH:
                pass
        await self._start_due(now)
        await self._short_circuit(now)
        return await outbox_store.next_due_at(self._core.db, sorted(self._probing))

    async def settle(self) -> None:
        """Wait for every send in flight to finish and be recorded (tests)."""
        while self._tasks:
            await asyncio.gather(*set(self._tasks), return_exceptions=True)

    def _fan_out(self, conn: Conn, now: int) -> int:
        events = outbox_store.take_events(conn, _FAN_OUT_BATCH)
        if events:
            webhooks.fan_out(self._core, conn, events, now)
        return len(events)

    async def _start_due(self, now: int) -> None:
        free = self._max - len(self._inflight)
        if free <= 0:
            return
        held = self._probing | {hook for hook, (until, _) in self._down.items() if until > now}
        # A send that settles while this read runs may come back still pending: never start it twice.
        self._settled_during_read.clear()
        due = await outbox_store.due_deliveries(self._core.db, now, free + len(self._inflight), exclude=sorted(held))
        chosen: list[DeliveryRow] = []
        per_key: Counter[str] = Counter()
        for row in due:
            key = row.webhook_id or row.channel
            if row.rowid in self._inflight or row.rowid in self._settled_during_read or self._per_key[key] + per_key[key] >= self._per_endpoint or key in self._probing:
                continue
            if len(self._inflight) + len(chosen) >= self._max:
                break
            if key in self._down:  # unreachable last time: one delivery goes first, as a probe
                if per_key[key]:
                    continue
            chosen.append(row)
            per_key[key] += 1
        for row in await self._claim(chosen, now):
            key = row.webhook_id or row.channel
            if key in self._down:
                self._probing.add(key)
            self._inflight[row.rowid] = key
            self._per_key[key] += 1
            task = asyncio.create_task(self._deliver(row))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _claim(self, rows: list[DeliveryRow], now: int) -> list[DeliveryRow]:
        """The rows this node sends: all of them when it is alone on its database; on PostgreSQL, those
        no other node claimed first (each delivery is sent by one node)."""
        if not rows or not is_postgres(self._core.db):
            return rows
        lease_until = now + self._timeout_ms + _CLAIM_GRACE_MS
        rowids = [row.rowid for row in rows]
        won = await self._core.db.write(lambda conn: outbox_store.claim_deliveries(conn, rowids, now, lease_until))
        return [row for row in rows if row.rowid in won]

    async def _deliver(self, row: DeliveryRow) -> None:
        try:
            try:
                attempt = await self._attempt(row)
            except Exception as exc:  # a bug in one channel must not stop the others
                log.exception("delivery attempt crashed", extra={"delivery_id": row.id})
                attempt = Attempt(ok=False, error=f"internal error: {type(exc).__name__}")
            await self._record(row, attempt)
        except Exception:
            log.exception("recording a delivery failed", extra={"delivery_id": row.id})
        finally:
            key = self._inflight.pop(row.rowid, "")
            self._settled_during_read.add(row.rowid)
            self._per_key[key] -= 1
            self._probing.discard(key)
            self._wake.set()

    async def _record(self, row: DeliveryRow, attempt: Attempt) -> None:
        core = self._core
        now = core.clock.now_ms()
        if row.webhook_id is not None:
            self._track_reachability(row.webhook_id, attempt, now)
        await core.db.write(lambda conn: webhooks.record_outcome(
            core, conn, row, ok=attempt.ok, status=attempt.status, error=attempt.error, now=now,
            give_up=attempt.give_up,
        ))
        if not attempt.ok:
            log.info("delivery attempt failed", extra={"delivery_id": row.id, "channel": row.channel,
                                                        "status": attempt.status, "error": attempt.error})

    async def _attempt(self, row: DeliveryRow) -> Attempt:
        if row.channel == "webhook":
            return await self._send_webhook(row)
        config = await webhook_store.fetch_alerts(self._core.db, row.workspace_id)
        if config is None:
            return Attempt(ok=False, error="failure alerts are no longer configured", give_up=True)
        data = msgspec.json.decode(row.body)
        link = alerts.alert_link(self._core.settings, data)
        if row.channel == "slack":
            url = alerts.slack_url(self._core, config)
            if url is None:
                return Attempt(ok=False, error="no Slack URL is configured any more", give_up=True)
            return await self._post(url, msgspec.json.encode(alerts.slack_message(data, link)),
                                    {"Content-Type": "application/json"})
        if not config.email:
            return Attempt(ok=False, error="no alert email is configured any more", give_up=True)
        return await self._send_email(config.email, data, link)

    def _track_reachability(self, webhook_id: str, attempt: Attempt, now: int) -> None:
        """An endpoint that gave no HTTP answer is not contacted again until `probe_ms` later."""
        if attempt.ok or attempt.status is not None:
            self._down.pop(webhook_id, None)
        elif not attempt.give_up:
            self._down[webhook_id] = (now + self._probe_ms, attempt.error or "unreachable")

    async def _short_circuit(self, now: int) -> None:
        """Due deliveries to an unreachable endpoint use their attempt without a request (one write for all).

        Their retry schedule runs on as if each had been tried, so a long outage still ends in
        `failed` after the last attempt, while a dead endpoint costs no connection per delivery.
        """
        down = {hook: why for hook, (until, why) in self._down.items() if until > now and hook not in self._probing}
        if not down:
            return
        rows = await self._claim(await outbox_store.due_deliveries(self._core.db, now, 1000, only=sorted(down)), now)
        if rows:
            await self._core.db.write(lambda conn: [
                webhooks.record_outcome(self._core, conn, row, ok=False, status=None, now=now,
                                        error=f"not sent: the endpoint is unreachable ({down[row.webhook_id or '']})")
                for row in rows
            ])

    async def _webhook(self, webhook_id: str) -> WebhookRow | None:
        """The endpoint's row, re-read after any endpoint change or a second (signing needs it for every send)."""
        cached = self._hooks.get(webhook_id)
        if cached is not None and cached[0] == self._sink.generation and time.monotonic() - cached[1] < _HOOK_CACHE_S:
            return cached[2]
        generation = self._sink.generation
        hook = await webhook_store.fetch_by_id(self._core.db, webhook_id)
        self._hooks[webhook_id] = (generation, time.monotonic(), hook)
        return hook

    async def _send_webhook(self, row: DeliveryRow) -> Attempt:
        assert row.webhook_id is not None
        hook = await self._webhook(row.webhook_id)
        if hook is None:
            return Attempt(ok=False, error="the webhook was deleted", give_up=True)
        now = self._core.clock.now_ms()
        signing = Signing(scheme="webhook", message_id=row.id, timestamp=now // 1000,
                          secrets=webhooks.signing_secrets(self._core, hook, now))
        return await self._post(hook.url, row.body, webhooks.webhook_headers(row.id, signing.timestamp), signing)

    async def _post(self, url: str, body: bytes, headers: dict[str, str], signing: Signing | None = None) -> Attempt:
        answer = await self._deliverer.post(Post(
            url=url, body=body, headers=headers, timeout_ms=self._timeout_ms, max_bytes=_SNIPPET_BYTES,
            channel="notifications", signing=signing,
        ))
        if answer.failure == "timeout":
            return Attempt(ok=False, error=f"no response within {self._timeout_ms / 1000:g}s")
        if answer.status is None:
            return Attempt(ok=False, error=answer.error)
        if 200 <= answer.status < 300:
            return Attempt(ok=True, status=answer.status)
        snippet = answer.body.decode("utf-8", "replace")
        return Attempt(ok=False, status=answer.status, error=f"HTTP {answer.status}" + (f": {snippet}" if snippet else ""))

    async def _send_email(self, to: str, data: dict[str, Any], link: str) -> Attempt:
        smtp = self._core.settings.alerts.smtp
        if not smtp.host:
            return Attempt(ok=False, error="SMTP is not configured ([alerts.smtp] host)", give_up=True)
        message = alerts.email_message(self._core.settings, to, data, link)
        try:
            await aiosmtplib.send(
                message, hostname=smtp.host, port=smtp.port, start_tls=smtp.starttls,
                username=smtp.username or None, password=smtp.password or None, timeout=smtp.ms("timeout") / 1000,
            )
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            return Attempt(ok=False, error=f"SMTP: {exc}" if str(exc) else f"SMTP: {type(exc).__name__}")
        return Attempt(ok=True)

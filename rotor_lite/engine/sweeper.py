"""The sweeper: puts back jobs whose lease expired and prunes each workspace's history past its retention."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from rotor_lite.models import Queue
from rotor_lite.services.core import Core
from rotor_lite.services.keyring import DAY_MS
from rotor_lite.services.retention import AUDIT_EVENTS_DAYS
from rotor_lite.services.workspaces import retention_days
from rotor_lite.store import audit as audit_store
from rotor_lite.store import jobs as job_store
from rotor_lite.store import outbox as outbox_store
from rotor_lite.store import runs as run_store
from rotor_lite.store import workspaces as ws_store
from rotor_lite.store.contract import Conn

log = logging.getLogger("rotor_lite.sweeper")
_REAP_EVERY_S = 1.0
_WORKSPACE_HISTORY = (job_store.prune_finished, run_store.prune_finished, outbox_store.prune_finished)
Prune = Callable[[Conn], dict[str, int]]


class Sweeper:
    """A background task; `on_requeued` wakes the dispatcher when stalled jobs went back."""

    def __init__(self, core: Core, on_requeued: Callable[[], None]) -> None:
        self._core = core
        self._on_requeued = on_requeued
        self._task: asyncio.Task[None] | None = None
        self._last_prune = 0

    async def __aenter__(self) -> Sweeper:
        self._task = asyncio.create_task(self._run(), name="rotor-sweeper")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(_REAP_EVERY_S)
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep failed")

    async def sweep(self) -> None:
        """One pass: reap expired leases; prune once per sweep interval."""
        now = self._core.clock.now_ms()
        stalled = await self._core.db.write(lambda conn: self._reap(conn, now))
        if stalled:
            self._core.metrics.stalled.inc(len(stalled))
            for job_id, queue in stalled:
                log.warning("job stalled: its lease ran out, it waits to be delivered again", extra={
                    "job_id": job_id, "queue": queue.name if queue else None,
                    "workspace": queue.workspace_id if queue else None,
                })
            self._on_requeued()
        if now - self._last_prune >= self._core.settings.retention.ms("sweep_interval"):
            self._last_prune = now
            await self._prune(now)

    def _reap(self, conn: Conn, now: int) -> list[tuple[str, Queue | None]]:
        stalled = [(job_id, self._core.queues.by_rowid(rowid)) for job_id, rowid in job_store.reap_expired(conn, now)]
        for job_id, queue in stalled:
            if queue is not None:
                self._core.events.emit(conn, queue.workspace_id, "job.stalled", {"jobId": job_id, "queueName": queue.name})
        return stalled

    async def _prune(self, now: int) -> None:
        """Each workspace's history older than its retention days, then audit events older than a year."""
        for workspace_id in await self._core.db.write(ws_store.workspace_ids):
            before = now - round(retention_days(self._core, workspace_id) * DAY_MS)
            for prune in _WORKSPACE_HISTORY:
                await self._prune_in_slices(functools.partial(prune, workspace_id=workspace_id, before=before))
        await self._prune_in_slices(functools.partial(audit_store.prune, before=now - AUDIT_EVENTS_DAYS * DAY_MS))

    async def _prune_in_slices(self, prune: Prune) -> None:
        """One small write per slice, so other writes get the writer in between."""
        while pruned := await self._core.db.write(prune):
            for kind, rows in pruned.items():
                self._core.metrics.pruned.labels(kind).inc(rows)
            await asyncio.sleep(0)

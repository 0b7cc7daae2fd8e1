"""What every service operation needs: settings, clock, database, vault and the live queue registry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from rotor_lite.clock import Clock
from rotor_lite.config import Settings
from rotor_lite.crypto import Vault
from rotor_lite.errors import QueueNotFound, QuotaExceeded
from rotor_lite.metrics import Metrics
from rotor_lite.services.fairness import Turns
from rotor_lite.services.hooks import Admission, AdmitAll, AttemptObserver, EventSink, NoEvents
from rotor_lite.services.hooks import NoSecrets, SecretSource
from rotor_lite.services.keyring import Authenticator
from rotor_lite.services.plans import WorkspacePlans
from rotor_lite.services.throughput import Throughput
from rotor_lite.services.workflow_state import WorkflowState
from rotor_lite.models import DeliveryHelper, Principal, Queue
from rotor_lite.store import jobs as job_store
from rotor_lite.store import queues as queue_store
from rotor_lite.store.db import Database
from rotor_lite.store.contract import Conn

if TYPE_CHECKING:
    from rotor_lite.services.workers import PullBroker


class QueueRegistry:
    """Every queue, in memory: the API and the dispatcher read it, services keep it current."""

    def __init__(self) -> None:
        self._by_name: dict[tuple[str, str], Queue] = {}
        self._by_rowid: dict[int, Queue] = {}

    def load(self, conn: Conn, vault: Vault) -> None:
        for row in queue_store.all_queues(conn):
            if row.secret_blob is not None:
                row.queue.callback_secret = vault.decrypt_text(row.secret_blob, b"callback_secret")
            self.put(row.queue)

    def reload(self, conn: Conn, vault: Vault) -> None:
        """Read every queue again: another node created, changed or deleted some."""
        fresh = QueueRegistry()
        fresh.load(conn, vault)
        self._by_name, self._by_rowid = fresh._by_name, fresh._by_rowid

    def put(self, queue: Queue) -> None:
        self._by_name[(queue.workspace_id, queue.name)] = queue
        self._by_rowid[queue.rowid] = queue

    def remove(self, queue: Queue) -> None:
        self._by_name.pop((queue.workspace_id, queue.name), None)
        self._by_rowid.pop(queue.rowid, None)

    def get(self, workspace_id: str, name: str) -> Queue:
        queue = self._by_name.get((workspace_id, name))
        if queue is None:
            raise QueueNotFound(name)
        return queue

    def by_rowid(self, rowid: int) -> Queue | None:
        return self._by_rowid.get(rowid)

    def of_workspace(self, workspace_id: str) -> list[Queue]:
        return sorted((q for q in self._by_rowid.values() if q.workspace_id == workspace_id), key=lambda q: q.name)

    def all(self) -> list[Queue]:
        return list(self._by_rowid.values())


class QuotaCounter:
    """Accepted jobs per workspace this month against its plan's quota, kept by the writer thread alone."""

    def __init__(self, plans: WorkspacePlans) -> None:
        self._plans = plans
        self._totals: dict[tuple[str, str], int] = {}

    def reserve(self, conn: Conn, workspace_id: str, period: str, count: int) -> None:
        """Count `count` more jobs, or raise QuotaExceeded and count none."""
        key = (workspace_id, period)
        total = self._totals.get(key)
        if total is None:
            total = job_store.usage_total(conn, workspace_id, period)
        limits = self._plans.limits_in(conn, workspace_id)
        if limits.jobs_per_month and total + count > limits.jobs_per_month:
            self._totals[key] = total
            raise QuotaExceeded(total, limits.jobs_per_month, limits.plan)
        self._totals[key] = total + count

    def check(self, conn: Conn, workspace_id: str, period: str, count: int) -> None:
        """Raise QuotaExceeded if `count` more would not fit; counts nothing."""
        self.reserve(conn, workspace_id, period, count)
        self._totals[(workspace_id, period)] -= count

    def forget(self) -> None:
        """Drop the cache after a failed commit; totals are re-read from the table."""
        self._totals.clear()


class Core:
    """The shared state of one server process, handed to every service function."""

    pull: PullBroker  # pull workers' leases and long polls, entered by the runtime

    def __init__(self, settings: Settings, clock: Clock, db: Database, vault: Vault) -> None:
        self.settings = settings
        self.clock = clock
        self.db = db
        self.vault = vault
        self.queues = QueueRegistry()
        self.plans = WorkspacePlans(settings)
        self.quota = QuotaCounter(self.plans)
        self.keys = Authenticator(db)
        self.metrics = Metrics()
        self.events: EventSink = NoEvents()
        self.admission: Admission = AdmitAll()
        self.throughput = Throughput(db, clock)  # delivery outcomes per minute, for the dashboard
        self.stopping = asyncio.Event()  # set as the server begins to stop: long-lived responses end then
        self.attempt_observers: list[AttemptObserver] = [self.throughput.observe]
        self.secret_values: SecretSource = NoSecrets()  # `${{ secrets.NAME }}` at dispatch
        self.on_jobs_ready: Callable[[], None] = lambda: None
        self.on_schedules_changed: Callable[[], None] = lambda: None  # wakes the scheduler
        self.workflows = WorkflowState()
        self.turns = Turns()  # fair claims' turns and rate windows (writer thread)
        self.delivery_helpers: Callable[[], list[DeliveryHelper]] = list  # each helper's health (none: in-process)

    def queue_for(self, principal: Principal, name: str) -> Queue:
        """The caller's queue `name`; a queue-scoped key sees only its own queue."""
        if principal.queue_name is not None and principal.queue_name != name:
            raise QueueNotFound(name)
        return self.queues.get(principal.workspace_id, name)


def billing_period(now_ms: int) -> str:
    """The usage period (UTC calendar month) of a moment, e.g. `2026-11`."""
    return datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc).strftime("%Y-%m")

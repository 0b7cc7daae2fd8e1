"""The event sink installed as `core.events`: an outbox row in the caller's transaction.

`emit` runs on the writer thread inside the transaction of the state change. It writes
nothing when no enabled webhook of the workspace subscribes to the event (and, for
`job.failed`, no failure alert is configured): the job path pays for an event only
when someone listens. A few system events are also audited here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from rotor_lite.clock import Clock
from rotor_lite.ids import new_id
from rotor_lite.models import Attempt, Claimed, Queue
from rotor_lite.services import audit
from rotor_lite.store import outbox as outbox_store
from rotor_lite.store import webhooks as webhook_store
from rotor_lite.store.outbox import OutboxEvent
from rotor_lite.store.contract import Conn

EVENT_TYPES = (
    "job.completed", "job.failed", "job.stalled", "approval.pending", "approval.approved", "approval.rejected",
    "guardrail.blocked", "queue.drained", "queue.error", "webhook.test", "run.completed", "run.failed", "run.cancelled",
)
ALERT_EVENTS = ("job.failed", "run.failed")
# System events that are also audit events: event type → (resource type, data key of its id).
_AUDITED = {"guardrail.blocked": ("job", "jobId"), "approval.pending": ("approval", "approvalId")}
_AUDITED_DATA = ("jobId", "queueName", "blockedBy", "reason")


class OutboxSink:
    """Writes subscribed events to the outbox and wakes the delivery task."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._wanted: dict[str, frozenset[str]] = {}
        self._wake: Callable[[], None] = lambda: None
        self._wake_pending = False
        self.generation = 0  # bumped by every endpoint change: the delivery task's cached rows are stale

    def set_waker(self, wake: Callable[[], None]) -> None:
        """`wake` must be safe to call from the writer thread."""
        self._wake = wake

    def woken(self) -> bool:
        """The delivery task is about to look at the outbox: True when an event was written since it last did."""
        pending, self._wake_pending = self._wake_pending, False
        return pending

    def notify(self) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            self._wake()

    def wants(self, workspace_id: str, event_type: str) -> bool:
        """True when an endpoint or an alert of the workspace listens to `event_type`."""
        return event_type in self._wanted.get(workspace_id, ())

    def emit(self, conn: Conn, workspace_id: str, event_type: str, data: dict[str, Any]) -> None:
        """Append the event to the outbox in the caller's transaction (when anyone listens)."""
        now = self._clock.now_ms()
        if event_type in _AUDITED:
            _audit_system_event(conn, workspace_id, event_type, data, now)
        if not self.wants(workspace_id, event_type):
            return
        outbox_store.append_event(conn, OutboxEvent(
            id=new_id("evt", now), workspace_id=workspace_id, event_type=event_type,
            data=msgspec.json.encode(data), target=None, created_at=now,
        ))
        self.notify()

    def refresh(self, conn: Conn, workspace_id: str) -> None:
        """Recompute what the workspace listens to (after a webhook or alert change, in its transaction)."""
        wanted: set[str] = set()
        for hook in webhook_store.of_workspace(conn, workspace_id):
            if hook.enabled:
                wanted.update(hook.event_types)
        alerts = webhook_store.get_alerts(conn, workspace_id)
        if alerts is not None and (alerts.email or alerts.slack_url):
            wanted.update(ALERT_EVENTS)
        self._wanted[workspace_id] = frozenset(wanted)
        self.generation += 1

    def reload(self, conn: Conn) -> None:
        """Compute the subscriptions again: another node changed a webhook or an alert."""
        self._wanted.clear()
        self.load(conn)
        self.generation += 1

    def load(self, conn: Conn) -> None:
        """Compute every workspace's subscriptions (at start)."""
        workspaces = {hook.workspace_id for hook in webhook_store.all_webhooks(conn)}
        workspaces.update(webhook_store.alert_workspaces(conn))
        for workspace_id in workspaces:
            self.refresh(conn, workspace_id)


def _audit_system_event(conn: Conn, workspace_id: str, event_type: str, data: dict[str, Any], now: int) -> None:
    resource_type, id_key = _AUDITED[event_type]
    metadata = {key: data[key] for key in _AUDITED_DATA if key in data and key != id_key}
    audit.record(conn, audit.audit_event(
        workspace_id, event_type, actor=audit.SYSTEM, now=now, resource_type=resource_type,
        resource_id=str(data.get(id_key, "")) or None, metadata=metadata,
    ))


class QueueErrorObserver:
    """Emits `queue.error` when a delivery fails for a queue-level reason, at most once a minute per queue.

    Queue-level: the attempt never got an HTTP answer and was not a timeout or a network error
    (a refused or invalid callback URL, an unknown secret in its template).
    """

    def __init__(self, events: OutboxSink, clock: Clock, every_ms: int = 60_000) -> None:
        self._events, self._clock, self._every_ms = events, clock, every_ms
        self._last: dict[int, int] = {}

    def __call__(self, conn: Conn, queue: Queue, job: Claimed, attempt: Attempt, terminal: bool) -> None:
        if attempt.outcome != "error" or attempt.status is not None:
            return
        if not self._events.wants(queue.workspace_id, "queue.error"):
            return
        now = self._clock.now_ms()
        if now - self._last.get(queue.rowid, -self._every_ms) < self._every_ms:
            return
        self._last[queue.rowid] = now
        self._events.emit(conn, queue.workspace_id, "queue.error", {"queueName": queue.name, "error": attempt.error})

"""Workflow events: `POST /v1/events`, `step.send_event` and deferred events all publish through here.

Publishing an event starts a run of every event-triggered function with its name and resumes
every run waiting for it whose `match` holds. A waiter is found through the equality its match
pins down (see `cel_match`), so an event among many waiting runs evaluates CEL only on candidates.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from rotor_lite import cel_match
from rotor_lite.errors import PayloadTooLarge, ValidationError
from rotor_lite.ids import new_id
from rotor_lite.models import Principal, RunStatus, StepStatus
from rotor_lite.schemas import EVENT_NAME, EventSend
from rotor_lite.services import runs as run_service
from rotor_lite.services.core import Core, billing_period
from rotor_lite.store import functions as function_store
from rotor_lite.store import runs as store
from rotor_lite.store.db import savepoint
from rotor_lite.store.runs import DeferredEvent
from rotor_lite.store.contract import Conn, is_postgres

__all__ = [
    "CANCEL_EVENT", "MAX_EVENT_BYTES", "Published", "deliver_due_events", "publish", "send_event", "valid_event_name",
]

CANCEL_EVENT = "rotor/cancel.run"
MAX_EVENT_BYTES = 512 * 1024
MAX_IDEMPOTENCY_KEY = 256
_NAME = re.compile(EVENT_NAME)


class Published(msgspec.Struct, kw_only=True):
    """What an event did: the runs it started (or found, for a known idempotency key) and resumed."""

    id: str
    run_ids: list[str] = msgspec.field(default_factory=list)
    resumed: int = 0
    duplicate: bool = False
    deferred: bool = False


async def send_event(core: Core, principal: Principal, spec: EventSend) -> Published:
    """`POST /v1/events`."""
    if spec.idempotency_key is not None and not 0 < len(spec.idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise ValidationError(f"idempotencyKey must be 1 to {MAX_IDEMPOTENCY_KEY} characters", field="idempotencyKey")
    key = spec.idempotency_key or spec.id
    try:
        published = await core.db.write(lambda conn: publish(
            core, conn, principal.workspace_id, spec.name, spec.data, ts=spec.ts, event_id=spec.id, idempotency_key=key,
        ))
    except Exception:
        core.quota.forget()  # a reservation may have been counted in a transaction that rolled back
        raise
    return published


def publish(
    core: Core, conn: Conn, workspace_id: str, name: str, data: Any, *, ts: int | None = None,
    event_id: str | None = None, idempotency_key: str | None = None,
) -> Published:
    """Publish one event in the caller's transaction (deferred when `ts` lies in the future)."""
    now = core.clock.now_ms()
    encoded = _checked(name, data)
    event = run_service.NewEvent(id=event_id or new_id("evt", now), name=name, data=encoded, ts=now if ts is None else ts)
    if event.ts > now:
        store.defer_event(conn, DeferredEvent(
            id=event.id, workspace_id=workspace_id, name=name, data=encoded, ts=event.ts, idempotency_key=idempotency_key,
        ))
        core.workflows.on_ready()
        return Published(id=event.id, deferred=True)
    if name == CANCEL_EVENT:
        return _cancel_from_event(core, conn, workspace_id, event)
    published = _start_runs(core, conn, workspace_id, event, idempotency_key)
    published.resumed = _resume_waiters(core, conn, workspace_id, event)
    return published


def deliver_due_events(core: Core, conn: Conn, now: int, limit: int) -> int:
    """Deferred events whose time came are published now (a quota refusal starts no run but still resumes)."""
    due = store.take_due_events(conn, now, limit)
    for event in due:
        decoded = msgspec.json.decode(event.data)
        try:
            with savepoint(conn, "deferred_event"):
                publish(core, conn, event.workspace_id, event.name, decoded, event_id=event.id,
                        idempotency_key=event.idempotency_key)
        except Exception:
            core.quota.forget()
            new_event = run_service.NewEvent(id=event.id, name=event.name, data=event.data, ts=event.ts)
            _resume_waiters(core, conn, event.workspace_id, new_event)
    return len(due)


def valid_event_name(name: object) -> bool:
    """True for a name an event can have (a waiter for any other name would wait in vain)."""
    return isinstance(name, str) and _NAME.match(name) is not None


def _checked(name: str, data: Any) -> bytes:
    if not valid_event_name(name):
        raise ValidationError(f"event name must match {EVENT_NAME}", field="name")
    encoded = msgspec.json.encode(data)
    if len(encoded) > MAX_EVENT_BYTES:
        raise PayloadTooLarge(f"event data is {len(encoded)} bytes; the limit is {MAX_EVENT_BYTES}", {"limit": MAX_EVENT_BYTES})
    return encoded


def _start_runs(
    core: Core, conn: Conn, workspace_id: str, event: run_service.NewEvent, key: str | None
) -> Published:
    functions = function_store.triggered_by(conn, workspace_id, event.name)
    # The quota is checked for every function first: a workspace at its limit gets the 402, duplicate or not.
    core.quota.check(conn, workspace_id, billing_period(core.clock.now_ms()), len(functions))
    published = Published(id=event.id)
    duplicates = 0
    for fn in functions:
        existing = None
        if key:
            store.lock_idempotency_key(conn, workspace_id, fn.id, key)
            existing = store.run_by_idempotency_key(conn, workspace_id, fn.id, key)
        if existing is not None:
            duplicates += 1
            published.run_ids.append(existing)
            continue
        published.run_ids.append(run_service.start_run(core, conn, fn, event, idempotency_key=key).id)
    published.duplicate = bool(functions) and duplicates == len(functions)
    return published


def _resume_waiters(core: Core, conn: Conn, workspace_id: str, event: run_service.NewEvent) -> int:
    data = msgspec.json.decode(event.data)
    paths = (
        store.pinned_paths_of(conn, workspace_id, event.name) if is_postgres(conn)
        else core.workflows.pins(workspace_id, event.name)
    )
    pins = cel_match.pin_values(data, paths)
    whole = {"data": data, "name": event.name, "id": event.id, "ts": event.ts}
    resumed = 0
    for waiter in store.event_waiters(conn, workspace_id, event.name, pins):
        if waiter.match is not None and not cel_match.matches(cel_match.compile_match(waiter.match), whole):
            continue
        if store.end_step(conn, waiter.step_rowid, StepStatus.COMPLETED, core.clock.now_ms(), output=event.data):
            store.delete_waiter_of_step(conn, waiter.step_rowid)
            run_service.continue_run(core, conn, waiter.run_rowid)
            resumed += 1
    return resumed


def _cancel_from_event(core: Core, conn: Conn, workspace_id: str, event: run_service.NewEvent) -> Published:
    """`rotor/cancel.run {runId}` cancels that run of the workspace (an unknown id does nothing)."""
    data = msgspec.json.decode(event.data)
    run_id = data.get("runId") if isinstance(data, dict) else None
    if not isinstance(run_id, str):
        raise ValidationError("rotor/cancel.run needs data.runId", field="data.runId")
    run = store.run_by_id(conn, workspace_id, run_id)
    if run is not None and run.status not in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED):
        run_service.cancel(core, conn, run)
    return Published(id=event.id)


"""Cron-triggered functions fire through the schedules engine: each has a schedule row with no queue.

The schedule is hidden from `/v1/schedules`; it is created, changed and deleted with its function,
and each tick starts a run whose event is `rotor/cron` (`{cron, timezone, scheduledFor}`).
"""

from __future__ import annotations


import msgspec

from rotor_lite.clock import iso_from_ms
from rotor_lite.cron import compile_schedule
from rotor_lite.errors import NotFound
from rotor_lite.ids import new_id
from rotor_lite.models import Function, Schedule, ScheduleRun
from rotor_lite.services import runs as run_service
from rotor_lite.services.core import Core
from rotor_lite.store import schedules as store
from rotor_lite.store.contract import Conn

__all__ = ["CRON_EVENT", "fire_function", "sync_function_schedule"]

CRON_EVENT = "rotor/cron"
_NO_QUEUE = 0  # schedule.queue_id is NOT NULL; no queue has rowid 0


def sync_function_schedule(core: Core, conn: Conn, fn: Function | None, existing: Function | None) -> str | None:
    """Make the schedule match the function (None: deleted); returns the function's schedule id, if any."""
    current = store.function_schedule(conn, existing.schedule_id) if existing and existing.schedule_id else None
    if fn is None or fn.cron is None or fn.timezone is None:
        if current is not None:
            store.delete_schedule(conn, current.rowid)
        return None
    now = core.clock.now_ms()
    next_fire = compile_schedule(fn.cron, fn.timezone).next_after(now)
    if current is not None:
        store.update_schedule(conn, msgspec.structs.replace(
            current, cron=fn.cron, timezone=fn.timezone, next_fire_at=next_fire, updated_at=now,
        ))
        return current.id
    schedule = Schedule(
        rowid=0, id=new_id("sched", now), workspace_id=fn.workspace_id, queue_id=_NO_QUEUE, name=f"function:{fn.id}",
        cron=fn.cron, timezone=fn.timezone, payload=b"{}", enabled=True, next_fire_at=next_fire, last_fired_at=None,
        created_at=now, updated_at=now, function_id=fn.id,
    )
    store.insert_schedule(conn, schedule)
    return schedule.id


def fire_function(core: Core, conn: Conn, schedule: Schedule, scheduled_for: int, fired_at: int) -> ScheduleRun:
    """One tick of a cron function: a run, and the schedule run that records it (may raise QuotaExceeded)."""
    assert schedule.function_id is not None
    fn = core.workflows.function(schedule.workspace_id, schedule.function_id)
    if fn is None:
        raise NotFound(f"function '{schedule.function_id}' no longer exists")
    data = {"cron": schedule.cron, "timezone": schedule.timezone, "scheduledFor": iso_from_ms(scheduled_for)}
    event = run_service.NewEvent(id=new_id("evt", fired_at), name=CRON_EVENT, data=msgspec.json.encode(data), ts=scheduled_for)
    run = run_service.start_run(core, conn, fn, event, schedule_id=schedule.id)
    tick = ScheduleRun(
        id=new_id("sr", fired_at), schedule_id=schedule.id, scheduled_for=scheduled_for, fired_at=fired_at, job_id=None,
        manual=False, callback_status=None, error=None,
    )
    store.insert_run(conn, tick, schedule.workspace_id, None)
    store.set_run_of_tick(conn, tick.id, run.id)
    store.set_last_fired(conn, schedule.rowid, fired_at)
    return tick

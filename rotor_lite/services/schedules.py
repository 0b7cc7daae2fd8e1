"""Schedule operations: create, read, list, update, pause/resume, delete, fire-now, runs, preview.

`apply_ticks` is the write path of cron ticks (the scheduler calls it), `fire_now` of manual
fires: the run row, its job and the schedule's next fire time are written in one transaction,
and the run of a cron tick is unique per `scheduled_for`, so a tick can never enqueue two jobs.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec

from rotor_lite.clock import iso
from rotor_lite.cron import CronSchedule, compile_schedule, describe, resolve_timezone, validate_cron
from rotor_lite.errors import Conflict, NotFound, PayloadTooLarge, QuotaExceeded, RotorError, ValidationError
from rotor_lite.ids import is_valid_id, new_id
from rotor_lite.models import Attempt, Claimed, Job, JobState, Principal, Queue, Schedule, ScheduleRun
from rotor_lite.schemas import QUEUE_NAME, JobCreate, ScheduleCreate, SchedulePreview, ScheduleUpdate
from rotor_lite.services import secrets as vault
from rotor_lite.services.core import Core
from rotor_lite.services.function_schedules import fire_function
from rotor_lite.services.jobs import build_job, parse_timestamp, write_new_jobs
from rotor_lite.services.paging import decode_cursor, encode_cursor
from rotor_lite.store import jobs as job_store
from rotor_lite.store import schedules as store
from rotor_lite.store.db import savepoint
from rotor_lite.store.contract import Conn, IntegrityError

__all__ = [
    "MAX_PREVIEW", "RECENT_RUNS", "ScheduleNotFound", "TickPlan", "apply_tick", "apply_ticks", "check_cron_and_zone", "create_schedule",
    "delete_schedule", "fire_now", "get_schedule", "list_runs", "list_schedules", "prepare_ticks", "preview",
    "queue_name_of", "recent_runs", "record_delivery", "set_enabled", "update_schedule",
]

log = logging.getLogger("rotor_lite.schedules")
MAX_PREVIEW = 50
RECENT_RUNS = 20
_NAME = re.compile(QUEUE_NAME)
# A tick whose job is refused for one of these is recorded as not fired; other errors are retried.
_UNFIREABLE = (QuotaExceeded, PayloadTooLarge, ValidationError)
# The run's callback_status vocabulary has no "network"/"error": a failed connection retries like a 5xx.
_STATUS_OF_OUTCOME = {"2xx": "2xx", "4xx": "4xx", "5xx": "5xx", "timeout": "timeout", "network": "5xx", "error": "5xx"}


class ScheduleNotFound(NotFound):
    def __init__(self, key: str) -> None:
        super().__init__(f"schedule '{key}' not found", {"schedule": key})


class TickPlan(msgspec.Struct, kw_only=True):
    """What one scheduler step does to a schedule, decided from the state it read.

    `fire_at` is the cron tick to enqueue now (None: none); `skipped` are ticks recorded as runs
    without a job, each with its reason; `next_fire_at` is written afterwards.
    """

    schedule: Schedule
    fire_at: int | None
    skipped: list[tuple[int, str]]
    next_fire_at: int | None
    job: Job | None = None


# Create, read, change ----------------------------------------------------------------


async def create_schedule(core: Core, principal: Principal, spec: ScheduleCreate) -> Schedule:
    """Validate and store a schedule; its first fire time is the cron's next tick after now."""
    queue = core.queue_for(principal, _queue_name(spec))
    cron, zone = check_cron_and_zone(spec.cron, spec.timezone)
    payload = _payload_of(spec.payload, spec.job_data)
    payload = await _payload_bytes(core, queue.workspace_id, {} if payload is msgspec.UNSET else payload)
    now = core.clock.now_ms()
    schedule_id = new_id("sched", now)
    schedule = Schedule(
        rowid=0, id=schedule_id, workspace_id=queue.workspace_id, queue_id=queue.rowid,
        name=_check_name(spec.name) if spec.name is not None else _default_name(queue.name, schedule_id),
        cron=cron, timezone=zone, payload=payload, enabled=spec.enabled,
        next_fire_at=_first_fire(cron, zone, now) if spec.enabled else None, last_fired_at=None,
        created_at=now, updated_at=now,
    )
    schedule.rowid = await core.db.write(lambda conn: _insert(conn, schedule))
    core.on_schedules_changed()
    return schedule


def _insert(conn: Conn, schedule: Schedule) -> int:
    try:
        return store.insert_schedule(conn, schedule)
    except IntegrityError as exc:
        raise _name_taken(schedule.name) from exc


async def get_schedule(core: Core, principal: Principal, key: str) -> Schedule:
    """The caller's schedule by external id or name; another workspace's (or queue's) is a 404."""
    schedule = await store.find_schedule(core.db, principal.workspace_id, key)
    if schedule is None or not _visible(core, principal, schedule):
        raise ScheduleNotFound(key)
    return schedule


async def list_schedules(
    core: Core, principal: Principal, *, limit: int, cursor: str | None
) -> tuple[list[Schedule], str | None]:
    """The workspace's schedules in creation order (a queue-scoped key sees its queue's only)."""
    queue_rowid = None
    if principal.queue_name is not None:
        queue_rowid = core.queue_for(principal, principal.queue_name).rowid
    found = await store.list_schedules(
        core.db, principal.workspace_id, queue_rowid=queue_rowid, after_rowid=decode_cursor(cursor), limit=limit + 1
    )
    page = found[:limit]
    return page, encode_cursor(page[-1].rowid) if len(found) > limit else None


async def update_schedule(core: Core, principal: Principal, key: str, spec: ScheduleUpdate) -> Schedule:
    """Change any of name, cron, timezone, payload, enabled; a new cron or zone recomputes the next fire."""
    current = await get_schedule(core, principal, key)
    updated = msgspec.structs.replace(current, updated_at=_edit_time(core, current))
    if spec.name is not msgspec.UNSET:
        updated.name = _check_name(spec.name)
    if spec.cron is not msgspec.UNSET or spec.timezone is not msgspec.UNSET:
        updated.cron, updated.timezone = check_cron_and_zone(
            current.cron if spec.cron is msgspec.UNSET else spec.cron,
            current.timezone if spec.timezone is msgspec.UNSET else spec.timezone,
        )
    payload = _payload_of(spec.payload, spec.job_data)
    if payload is not msgspec.UNSET:
        updated.payload = await _payload_bytes(core, current.workspace_id, payload)
    if spec.enabled is not msgspec.UNSET:
        updated.enabled = spec.enabled
    return await _save(core, current, updated)


async def set_enabled(core: Core, principal: Principal, key: str, enabled: bool) -> Schedule:
    """Pause (no ticks) or resume (from the next tick after now); doing it twice is harmless."""
    current = await get_schedule(core, principal, key)
    if current.enabled == enabled:
        return current
    return await _save(core, current, msgspec.structs.replace(current, enabled=enabled, updated_at=_edit_time(core, current)))


def _edit_time(core: Core, current: Schedule) -> int:
    # Strictly increasing: the scheduler recognises an edited schedule by a changed updated_at.
    return max(core.clock.now_ms(), current.updated_at + 1)


async def _save(core: Core, current: Schedule, updated: Schedule) -> Schedule:
    timing_changed = (updated.cron, updated.timezone, updated.enabled) != (current.cron, current.timezone, current.enabled)
    if not updated.enabled:
        updated.next_fire_at = None
    elif timing_changed:
        updated.next_fire_at = _first_fire(updated.cron, updated.timezone, updated.updated_at)

    def write(conn: Conn) -> None:
        stored = store.schedule_row(conn, current.rowid)
        if stored is None:
            raise ScheduleNotFound(current.id)
        if updated.enabled and not timing_changed:
            updated.next_fire_at = stored.next_fire_at  # the scheduler may have moved it since it was read
        try:
            store.update_schedule(conn, updated)
        except IntegrityError as exc:
            raise _name_taken(updated.name) from exc

    await core.db.write(write)
    core.on_schedules_changed()
    return updated


async def delete_schedule(core: Core, principal: Principal, key: str) -> None:
    """Delete a schedule; it stops firing at once and its runs are kept."""
    schedule = await get_schedule(core, principal, key)
    await core.db.write(lambda conn: store.delete_schedule(conn, schedule.rowid))
    core.on_schedules_changed()


# Runs, fire-now, preview ----------------------------------------------------------------


async def recent_runs(core: Core, schedule: Schedule, limit: int = RECENT_RUNS) -> list[ScheduleRun]:
    """The schedule's latest runs, newest first."""
    return await store.runs_of(core.db, schedule.workspace_id, schedule.id, before_rowid=None, limit=limit)


async def list_runs(
    core: Core, principal: Principal, key: str, *, limit: int, cursor: str | None
) -> tuple[list[ScheduleRun], str | None]:
    """One page of a schedule's runs, newest first; a deleted schedule's runs stay readable by its id."""
    before = decode_cursor(cursor)
    deleted = False
    try:
        schedule_id = (await get_schedule(core, principal, key)).id
    except ScheduleNotFound:
        if not is_valid_id(key, "sched") or principal.queue_name is not None:
            raise
        schedule_id, deleted = key, True
    found = await store.runs_of(core.db, principal.workspace_id, schedule_id, before_rowid=before, limit=limit + 1)
    if deleted and not found and before is None:
        raise ScheduleNotFound(key)
    page = found[:limit]
    return page, encode_cursor(page[-1].rowid) if len(found) > limit else None


def preview(spec: SchedulePreview, now_ms: int) -> tuple[list[int], str]:
    """The next `count` fire instants after `from` (default now) and the cron in plain English."""
    cron, zone = check_cron_and_zone(spec.cron, spec.timezone)
    if not 1 <= spec.count <= MAX_PREVIEW:
        raise ValidationError(f"count must be between 1 and {MAX_PREVIEW}", field="count")
    start = now_ms if spec.start is None else parse_timestamp(spec.start, "from")
    return compile_schedule(cron, zone).upcoming(start, spec.count), describe(cron)


def queue_name_of(core: Core, schedule: Schedule) -> str:
    queue = core.queues.by_rowid(schedule.queue_id)
    return queue.name if queue is not None else ""


# The tick ------------------------------------------------------------------------------


async def prepare_ticks(core: Core, plans: list[TickPlan]) -> list[TickPlan]:
    """Build (and screen) the job of each plan that fires; the scheduler does this before the tick is due."""
    return [await _prepare(core, plan) for plan in plans]


async def _prepare(core: Core, plan: TickPlan) -> TickPlan:
    queue = core.queues.by_rowid(plan.schedule.queue_id)
    if plan.fire_at is None or plan.job is not None or queue is None:
        return plan
    try:
        # Prepared ahead, the job is created at its tick; a late tick's job when it is enqueued.
        job = await _tick_job(core, queue, plan.schedule, max(plan.fire_at, core.clock.now_ms()))
    except _UNFIREABLE as exc:
        return _as_failed(plan, exc)
    return msgspec.structs.replace(plan, job=job)


async def apply_ticks(core: Core, plans: list[TickPlan]) -> list[ScheduleRun | None]:
    """Carry out cron plans in one writer operation (one commit for the whole batch).

    A plan whose schedule changed since it was read (paused, edited, deleted, already advanced)
    does nothing: the scheduler reads it again. A job that cannot be enqueued (quota, payload
    limit) is recorded as a run with the error, and the schedule moves on. If the batch fails
    as a whole (a bug, a storage error), each plan is tried alone so one cannot hold up the rest.
    """
    ready = await prepare_ticks(core, plans)
    try:
        runs = await core.db.write(lambda conn: [_write_plan(core, conn, p) for p in ready])
    except Exception:
        if len(ready) == 1:
            raise
        log.exception("a batch of ticks failed; trying each alone")
        runs = [await _apply_alone(core, plan) for plan in ready]
    _after_enqueue(core, [(plan.schedule, run) for plan, run in zip(ready, runs) if run is not None])
    return runs


async def _apply_alone(core: Core, plan: TickPlan) -> ScheduleRun | None:
    try:
        return await core.db.write(lambda conn: _write_plan(core, conn, plan))
    except Exception:
        log.exception("tick failed; it stays due", extra={"schedule_id": plan.schedule.id})
        return None


async def apply_tick(core: Core, plan: TickPlan) -> ScheduleRun | None:
    """One cron plan (see `apply_ticks`)."""
    return (await apply_ticks(core, [plan]))[0]


async def fire_now(core: Core, principal: Principal, key: str) -> ScheduleRun:
    """Enqueue the job a tick would, now, as a manual run; the next fire time does not move."""
    schedule = await get_schedule(core, principal, key)
    queue = core.queues.by_rowid(schedule.queue_id)
    if queue is None:
        raise ScheduleNotFound(key)
    now = core.clock.now_ms()
    job = await _tick_job(core, queue, schedule, now)

    def write(conn: Conn) -> ScheduleRun:
        if store.schedule_row(conn, schedule.rowid) is None:
            raise ScheduleNotFound(key)
        return _enqueue(core, conn, queue, schedule, job, now, manual=True)

    try:
        run = await core.db.write(write)
    except QuotaExceeded:
        core.quota.forget()  # the reservation may not have been committed
        raise
    _after_enqueue(core, [(schedule, run)])
    return run


async def _tick_job(core: Core, queue: Queue, schedule: Schedule, at: int) -> Job:
    job = build_job(core, queue, JobCreate(payload=msgspec.Raw(schedule.payload)), new_id("job", at), at)
    job.schedule_id = schedule.id
    [screened] = await core.admission.screen(queue, [job])
    return screened


def _after_enqueue(core: Core, fired: list[tuple[Schedule, ScheduleRun]]) -> None:
    for schedule, run in fired:
        queue_name = queue_name_of(core, schedule)
        if schedule.function_id is None:  # a cron function's tick started a run, not a job
            core.metrics.enqueued.labels(schedule.workspace_id, queue_name).inc()
        log.info("schedule fired", extra={
            "schedule_id": schedule.id, "run_id": run.id, "job_id": run.job_id, "queue": queue_name,
            "function_id": schedule.function_id, "workspace": schedule.workspace_id,
            "scheduled_for": iso(run.scheduled_for),
            "lateness_ms": (run.fired_at or run.scheduled_for) - run.scheduled_for, "manual": run.manual,
        })
    if fired:
        core.on_jobs_ready()


def _as_failed(plan: TickPlan, exc: RotorError) -> TickPlan:
    if plan.fire_at is None:
        return plan
    return msgspec.structs.replace(plan, fire_at=None, job=None, skipped=[*plan.skipped, (plan.fire_at, _not_fired(exc))])


def _not_fired(exc: RotorError) -> str:
    return f"not fired: {exc.code}: {exc.message}"


def _write_plan(core: Core, conn: Conn, plan: TickPlan) -> ScheduleRun | None:
    schedule = plan.schedule
    queue = core.queues.by_rowid(schedule.queue_id)
    fires = plan.fire_at is not None and (schedule.function_id is not None or (plan.job is not None and queue is not None))
    fired_at = core.clock.now_ms()
    # The claim is conditional on the schedule being as it was read: one writer, so one claimant.
    if not store.claim_tick(conn, schedule, plan.next_fire_at):
        return None
    for scheduled_for, reason in plan.skipped:
        _record_skip(conn, schedule, scheduled_for, reason)
    if not fires or store.tick_recorded(conn, schedule.id, plan.fire_at or 0):
        return None
    assert plan.fire_at is not None
    try:
        if schedule.function_id is not None:
            with savepoint(conn, "function_tick"):
                return fire_function(core, conn, schedule, plan.fire_at, fired_at)
        assert queue is not None and plan.job is not None
        return _enqueue(core, conn, queue, schedule, plan.job, plan.fire_at, manual=False, fired_at=fired_at)
    except (QuotaExceeded, NotFound) as exc:  # raised before anything of the job (or run) is kept
        _record_skip(conn, schedule, plan.fire_at, _not_fired(exc))
        return None


def _record_skip(conn: Conn, schedule: Schedule, scheduled_for: int, reason: str) -> None:
    if store.tick_recorded(conn, schedule.id, scheduled_for):
        return
    run = ScheduleRun(
        id=new_id("sr", scheduled_for), schedule_id=schedule.id, scheduled_for=scheduled_for, fired_at=None,
        job_id=None, manual=False, callback_status=None, error=reason,
    )
    store.insert_run(conn, run, schedule.workspace_id, None)


def _enqueue(
    core: Core, conn: Conn, queue: Queue, schedule: Schedule, job: Job, scheduled_for: int, *,
    manual: bool, fired_at: int | None = None,
) -> ScheduleRun:
    fired_at = core.clock.now_ms() if fired_at is None else fired_at
    write_new_jobs(core, conn, queue, [job], set(), strict=False)
    row = job_store.job_row(conn, queue.rowid, job.id)
    assert row is not None
    status, error = _initial_status(queue, job)
    run = ScheduleRun(
        id=new_id("sr", fired_at), schedule_id=schedule.id, scheduled_for=scheduled_for, fired_at=fired_at,
        job_id=job.id, manual=manual, callback_status=status, error=error,
    )
    store.insert_run(conn, run, schedule.workspace_id, row[0])
    store.set_last_fired(conn, schedule.rowid, fired_at)
    return run


def _initial_status(queue: Queue, job: Job) -> tuple[str | None, str | None]:
    if job.state == JobState.BLOCKED:
        return None, f"blocked by guardrail {job.blocked_by}: {job.block_reason}"
    return ("pending" if queue.callback_url else None), None


def record_delivery(conn: Conn, queue: Queue, job: Claimed, attempt: Attempt, terminal: bool) -> None:
    """AttemptObserver: keep the run of a scheduled job current with its latest delivery."""
    if job.schedule_id is None:
        return  # not a scheduled job: spare the writer a statement per delivery
    status = _STATUS_OF_OUTCOME.get(attempt.outcome, "5xx")
    error = None if status == "2xx" else (attempt.error or f"callback returned {attempt.status}")
    store.record_delivery(conn, job.rowid, status, error)


# Validation ----------------------------------------------------------------------------


def check_cron_and_zone(cron: str | None, zone: str | None) -> tuple[str, str]:
    spec = validate_cron(cron)
    canonical = resolve_timezone(zone)
    if CronSchedule(spec, canonical).next_after(0) is None:
        raise ValidationError(f"cron '{spec.text}' never fires (no such date)", field="cron")
    return spec.text, canonical


def _first_fire(cron: str, zone: str, now: int) -> int | None:
    return compile_schedule(cron, zone).next_after(now)


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValidationError(f"name must match {QUEUE_NAME}", field="name")
    if is_valid_id(name, "sched"):
        raise ValidationError("name must not look like a schedule id (sched_<32 hex>)", field="name")
    return name


def _default_name(queue_name: str, schedule_id: str) -> str:
    return f"{queue_name[:119]}-{schedule_id[-8:]}"


def _name_taken(name: str) -> Conflict:
    return Conflict(f"a schedule named '{name}' already exists", {"name": name})


def _queue_name(spec: ScheduleCreate) -> str:
    if spec.queue is not None and spec.queue_name is not None and spec.queue != spec.queue_name:
        raise ValidationError("queue and queue_name differ: give one of them", field="queue")
    name = spec.queue if spec.queue is not None else spec.queue_name
    if not name:
        raise ValidationError("queue is required", field="queue")
    return name


def _payload_of(payload: Any, job_data: Any) -> Any:
    """`payload` or its alias `job_data`; UNSET when neither was given."""
    if payload is not msgspec.UNSET and job_data is not msgspec.UNSET and payload != job_data:
        raise ValidationError("payload and job_data differ: give one of them", field="payload")
    return payload if payload is not msgspec.UNSET else job_data


async def _payload_bytes(core: Core, workspace_id: str, payload: Any) -> bytes:
    encoded = msgspec.json.encode(payload)
    limit = core.settings.limits.max_payload_bytes
    if len(encoded) > limit:
        raise PayloadTooLarge(f"payload is {len(encoded)} bytes; the limit is {limit}", {"limit": limit})
    if vault.MARKER_BYTES in encoded:
        await vault.require_known(core, workspace_id, [("payload", payload)])
    return encoded



def _visible(core: Core, principal: Principal, schedule: Schedule) -> bool:
    if principal.queue_name is None:
        return True
    queue = core.queues.by_rowid(schedule.queue_id)
    return queue is not None and queue.name == principal.queue_name

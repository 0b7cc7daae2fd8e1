"""`/v1/schedules`: create, list, get, update, pause, resume, delete, fire-now, runs, preview."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, route

from rotor_lite.api.auth import READ, WRITE
from rotor_lite.api.http import core_of, json_response, page_limit, read_body
from rotor_lite.clock import iso_from_ms
from rotor_lite.cron import describe
from rotor_lite.models import Principal, Schedule, ScheduleRun
from rotor_lite.schemas import (
    FiredNow,
    ScheduleCreate,
    ScheduleOut,
    SchedulePage,
    SchedulePreview,
    SchedulePreviewOut,
    ScheduleRunOut,
    ScheduleRunPage,
    ScheduleUpdate,
)
from rotor_lite.services import schedules as service
from rotor_lite.services.core import Core


class ScheduleController(Controller):
    path = "/v1/schedules"
    tags = ["Schedules"]

    @post("/", status_code=201, opt={"access": WRITE, "body": ScheduleCreate, "returns": ScheduleOut})
    async def create_schedule(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """Create a cron schedule on a queue; `timezone` (an IANA name) is required."""
        spec = await read_body(request, ScheduleCreate)
        core = core_of(request)
        schedule = await service.create_schedule(core, principal, spec)
        return json_response(schedule_out(core, schedule), 201)

    @get("/", opt={"access": READ, "returns": SchedulePage})
    async def list_schedules(
        self, request: Request[Any, Any, Any], principal: Principal, limit: int | None = None, cursor: str | None = None
    ) -> Response[bytes]:
        """The workspace's schedules with their next fire time."""
        core = core_of(request)
        schedules, next_cursor = await service.list_schedules(core, principal, limit=page_limit(limit), cursor=cursor)
        return json_response(SchedulePage(data=[schedule_out(core, s) for s in schedules], nextCursor=next_cursor))

    @post("/preview", status_code=200, opt={"access": READ, "body": SchedulePreview, "returns": SchedulePreviewOut})
    async def preview(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """The next fire times of a cron in a zone, and the cron in plain English."""
        spec = await read_body(request, SchedulePreview)
        fires, description = service.preview(spec, core_of(request).clock.now_ms())
        return json_response(SchedulePreviewOut(next=[iso_from_ms(ms) or "" for ms in fires], description=description))

    @get("/{schedule_id:str}", opt={"access": READ, "returns": ScheduleOut})
    async def get_schedule(self, request: Request[Any, Any, Any], principal: Principal, schedule_id: str) -> Response[bytes]:
        """One schedule (by external id or name) with its 20 latest runs."""
        core = core_of(request)
        schedule = await service.get_schedule(core, principal, schedule_id)
        runs = await service.recent_runs(core, schedule)
        return json_response(schedule_out(core, schedule, runs))

    @patch("/{schedule_id:str}", opt={"access": WRITE, "body": ScheduleUpdate, "returns": ScheduleOut})
    async def update_schedule(self, request: Request[Any, Any, Any], principal: Principal, schedule_id: str) -> Response[bytes]:
        """Change any of cron, timezone, payload, enabled, name."""
        spec = await read_body(request, ScheduleUpdate)
        core = core_of(request)
        return json_response(schedule_out(core, await service.update_schedule(core, principal, schedule_id, spec)))

    @route("/{schedule_id:str}/pause", http_method=["PATCH", "POST"], status_code=200,
           opt={"access": WRITE, "returns": ScheduleOut})
    async def pause_schedule(self, request: Request[Any, Any, Any], principal: Principal, schedule_id: str) -> Response[bytes]:
        """Stop ticks until resumed; jobs already enqueued are not affected."""
        return await _set_enabled(request, principal, schedule_id, enabled=False)

    @route("/{schedule_id:str}/resume", http_method=["PATCH", "POST"], status_code=200,
           opt={"access": WRITE, "returns": ScheduleOut})
    async def resume_schedule(self, request: Request[Any, Any, Any], principal: Principal, schedule_id: str) -> Response[bytes]:
        """Tick again, from the next cron time after now."""
        return await _set_enabled(request, principal, schedule_id, enabled=True)

    @delete("/{schedule_id:str}", status_code=204, opt={"access": WRITE})
    async def delete_schedule(self, request: Request[Any, Any, Any], principal: Principal, schedule_id: str) -> None:
        """Delete the schedule; its run history is kept."""
        await service.delete_schedule(core_of(request), principal, schedule_id)

    @post("/{schedule_id:str}/fire-now", status_code=201, opt={"access": WRITE, "returns": FiredNow})
    async def fire_now(self, request: Request[Any, Any, Any], principal: Principal, schedule_id: str) -> Response[bytes]:
        """Enqueue the schedule's job now; the next cron fire time is unchanged."""
        run = await service.fire_now(core_of(request), principal, schedule_id)
        return json_response(FiredNow(jobId=run.job_id or "", runId=run.id), 201)

    @get("/{schedule_id:str}/runs", opt={"access": READ, "returns": ScheduleRunPage})
    async def list_runs(
        self, request: Request[Any, Any, Any], principal: Principal, schedule_id: str, limit: int | None = None,
        cursor: str | None = None,
    ) -> Response[bytes]:
        """The schedule's runs (cron ticks and manual fires), newest first."""
        runs, next_cursor = await service.list_runs(
            core_of(request), principal, schedule_id, limit=page_limit(limit), cursor=cursor
        )
        return json_response(ScheduleRunPage(runs=[run_out(r) for r in runs], nextCursor=next_cursor))


async def _set_enabled(request: Request[Any, Any, Any], principal: Principal, schedule_id: str, *, enabled: bool) -> Response[bytes]:
    core = core_of(request)
    return json_response(schedule_out(core, await service.set_enabled(core, principal, schedule_id, enabled)))


def schedule_out(core: Core, schedule: Schedule, runs: list[ScheduleRun] | None = None) -> ScheduleOut:
    """A schedule as the API shows it (`id` and `external_id` are the same `sched_…` id)."""
    return ScheduleOut(
        id=schedule.id, external_id=schedule.id, name=schedule.name, queue=service.queue_name_of(core, schedule),
        cron=schedule.cron, timezone=schedule.timezone, payload=msgspec.Raw(schedule.payload),
        enabled=schedule.enabled, next_fire_at=iso_from_ms(schedule.next_fire_at),
        last_fired_at=iso_from_ms(schedule.last_fired_at), created_at=iso_from_ms(schedule.created_at) or "",
        updated_at=iso_from_ms(schedule.updated_at) or "", description=describe(schedule.cron),
        runs=None if runs is None else [run_out(r) for r in runs],
    )


def run_out(run: ScheduleRun) -> ScheduleRunOut:
    return ScheduleRunOut(
        id=run.id, schedule_id=run.schedule_id, scheduled_for=iso_from_ms(run.scheduled_for) or "",
        fired_at=iso_from_ms(run.fired_at), job_id=run.job_id, manual=run.manual,
        callback_status=run.callback_status, error=run.error,
    )

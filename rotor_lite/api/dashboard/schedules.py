"""Cron schedules: the list (with a create form), a schedule's next fires in its zone and the viewer's, its
run history, pause/resume, fire now, and the preview a cron field shows as it is typed."""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import available_timezones

import msgspec
from litestar import Request, Response, get, post
from litestar.response import Redirect, Template

from rotor_lite.api.controllers.schedules import ScheduleController, run_out, schedule_out
from rotor_lite.api.dashboard.access import act, allowed_all, mirror
from rotor_lite.api.dashboard.render import PAGE_SIZE, page, zoned_time
from rotor_lite.api.http import core_of, json_response
from rotor_lite.clock import iso
from rotor_lite.errors import RotorError, ValidationError
from rotor_lite.models import Principal, Schedule
from rotor_lite.schemas import ScheduleCreate, SchedulePreview, ScheduleUpdate
from rotor_lite.services import schedules

NEXT_FIRES = 5
LIST = "/dashboard/schedules"


def schedule_url(schedule_id: str) -> str:
    return f"{LIST}/{quote(schedule_id, safe='')}"


@get("/schedules", opt=mirror(ScheduleController.list_schedules))
async def schedules_page(request: Request[Any, Any, Any], principal: Principal, cursor: str | None = None) -> Template:
    """Every schedule with its next fire time; a form to create one."""
    core = core_of(request)
    found, next_cursor = await schedules.list_schedules(core, principal, limit=PAGE_SIZE, cursor=cursor)
    shown = [{"schedule": schedule_out(core, s), "next_ms": s.next_fire_at, "zone": s.timezone} for s in found]
    return page(
        request, principal, "schedules.html", schedules=shown,
        more=urlencode({"cursor": next_cursor}) if next_cursor else None,
        queues=[q.name for q in core.queues.of_workspace(principal.workspace_id)], zones=_zones(),
        can=allowed_all(principal, create=create_schedule),
    )


@get("/schedules/preview", opt=mirror(ScheduleController.preview), media_type="application/json")
async def preview(
    request: Request[Any, Any, Any], principal: Principal, cron: str = "", timezone: str = "",
) -> Response[bytes]:
    """The next fires of a cron in a zone (UTC and in that zone) and the cron in words; a 422 says what is wrong."""
    try:
        _, zone = schedules.check_cron_and_zone(cron, timezone)  # the zone's own spelling ("europe/paris" is accepted)
        fires, description = schedules.preview(SchedulePreview(cron=cron, timezone=zone, count=NEXT_FIRES),
                                               core_of(request).clock.now_ms())
    except RotorError as exc:
        return json_response({"error": exc.message}, exc.status)
    return json_response({"description": description,
                          "next": [{"utc": iso(ms), "zoned": zoned_time(ms, zone)} for ms in fires]})


@post("/schedules", opt=mirror(ScheduleController.create_schedule))
async def create_schedule(request: Request[Any, Any, Any], principal: Principal) -> Redirect:
    work = _create(request, principal, await request.form())
    return await act(request, principal, LIST, work, lambda s: f"schedule '{s.name}' created",
                     then=lambda s: schedule_url(s.id))


async def _create(request: Request[Any, Any, Any], principal: Principal, form: Any) -> Schedule:
    spec = ScheduleCreate(
        queue=str(form.get("queue") or ""), name=str(form.get("name") or "") or None, cron=str(form.get("cron") or ""),
        timezone=str(form.get("timezone") or ""), payload=_json_field(str(form.get("payload") or "{}"), "payload"),
    )
    return await schedules.create_schedule(core_of(request), principal, spec)


def _json_field(text: str, name: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise ValidationError(f"{name} must be JSON", field=name) from exc


@get("/schedules/{schedule_id:str}", opt=mirror(ScheduleController.get_schedule))
async def schedule_page(
    request: Request[Any, Any, Any], principal: Principal, schedule_id: str, cursor: str | None = None,
) -> Template:
    """A schedule: its next fires (its zone's and the viewer's), its run history, and what may be done to it."""
    core = core_of(request)
    schedule = await schedules.get_schedule(core, principal, schedule_id)
    history, next_cursor = await schedules.list_runs(core, principal, schedule.id, limit=PAGE_SIZE, cursor=cursor)
    fires: list[int] = []
    if schedule.enabled:
        fires, _ = schedules.preview(SchedulePreview(cron=schedule.cron, timezone=schedule.timezone, count=NEXT_FIRES),
                                     core.clock.now_ms())
    return page(
        request, principal, "schedule.html", schedule=schedule_out(core, schedule), fires=fires, zone=schedule.timezone,
        runs=[run_out(r) for r in history], more=urlencode({"cursor": next_cursor}) if next_cursor else None,
        zones=_zones(), can=allowed_all(principal, pause=pause_schedule, resume=resume_schedule, fire=fire_now,
                                        update=update_schedule),
    )


@post("/schedules/{schedule_id:str}/pause", opt=mirror(ScheduleController.pause_schedule))
async def pause_schedule(request: Request[Any, Any, Any], principal: Principal, schedule_id: str) -> Redirect:
    work = schedules.set_enabled(core_of(request), principal, schedule_id, False)
    return await act(request, principal, schedule_url(schedule_id), work, lambda s: f"schedule '{s.name}' paused")


@post("/schedules/{schedule_id:str}/resume", opt=mirror(ScheduleController.resume_schedule))
async def resume_schedule(request: Request[Any, Any, Any], principal: Principal, schedule_id: str) -> Redirect:
    work = schedules.set_enabled(core_of(request), principal, schedule_id, True)
    return await act(request, principal, schedule_url(schedule_id), work, lambda s: f"schedule '{s.name}' resumed")


@post("/schedules/{schedule_id:str}/fire-now", opt=mirror(ScheduleController.fire_now))
async def fire_now(request: Request[Any, Any, Any], principal: Principal, schedule_id: str) -> Redirect:
    work = schedules.fire_now(core_of(request), principal, schedule_id)
    return await act(request, principal, schedule_url(schedule_id), work, lambda run: f"fired: job {run.job_id}")


@post("/schedules/{schedule_id:str}/update", opt=mirror(ScheduleController.update_schedule))
async def update_schedule(request: Request[Any, Any, Any], principal: Principal, schedule_id: str) -> Redirect:
    form = await request.form()
    spec = ScheduleUpdate(cron=str(form.get("cron") or ""), timezone=str(form.get("timezone") or ""))
    work = schedules.update_schedule(core_of(request), principal, schedule_id, spec)
    return await act(request, principal, schedule_url(schedule_id), work, lambda s: f"schedule '{s.name}' updated")


@cache
def _zones() -> list[str]:
    """The IANA zone names, for the time zone fields' suggestions."""
    return sorted(available_timezones())



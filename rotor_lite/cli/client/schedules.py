"""`rotor schedules ...`: create, list, inspect, update, pause, resume, delete, fire and preview cron schedules."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from rotor_lite.cli.client.context import Session, client_command
from rotor_lite.cli.client.output import Output

__all__ = ["schedules"]


@click.group("schedules")
def schedules() -> None:
    """Create, inspect and manage cron schedules."""


def _parse_json(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", ctx=ctx, param=param) from exc


_PAYLOAD_HELP = "Payload of each generated job, as JSON (default {})."


@schedules.command("create")
@click.option("--queue", required=True, help="Queue to enqueue jobs into.")
@click.option("--cron", required=True, help='Cron expression: 5 fields, or 6 with seconds first (e.g. "0 9 * * 1-5").')
@click.option("--timezone", required=True, help='IANA time zone, e.g. "America/New_York" (offsets are refused).')
@click.option("--name", help="Name of the schedule, unique in the workspace (default generated).")
@click.option("--payload", callback=_parse_json, metavar="JSON", help=_PAYLOAD_HELP)
@click.option("--job-data", callback=_parse_json, metavar="JSON", help="Same as --payload (the reference docs' name).")
@click.option("--disabled", is_flag=True, help="Create it paused.")
@client_command
def create_schedule(
    session: Session, /, *, queue: str, cron: str, timezone: str, name: str | None, payload: Any, job_data: Any,
    disabled: bool,
) -> None:
    """Create a cron schedule on a queue."""
    with session.client() as rotor:
        schedule = rotor.schedules.create(
            queue=queue, cron=cron, timezone=timezone, name=name, payload=payload, job_data=job_data,
            enabled=False if disabled else None,
        )
    session.output.emit(schedule, _render_saved("Created"))


@schedules.command("list")
@click.option("--limit", type=click.IntRange(1, 500), help="Schedules per page (default 50).")
@click.option("--cursor", help="Page cursor printed by the previous call.")
@client_command
def list_schedules(session: Session, /, *, limit: int | None, cursor: str | None) -> None:
    """List schedules: NAME, CRON, TIMEZONE, NEXT FIRE (in the schedule's zone), ENABLED."""
    with session.client() as rotor:
        page = rotor.schedules.list(limit=limit, cursor=cursor)
    session.output.emit(page, render_schedule_table)


@schedules.command("get")
@click.argument("schedule")
@client_command
def get_schedule(session: Session, /, *, schedule: str) -> None:
    """Show SCHEDULE (external id or name) with its latest runs."""
    with session.client() as rotor:
        found = rotor.schedules.get(schedule)
    session.output.emit(found, render_schedule)


@schedules.command("update")
@click.argument("schedule")
@click.option("--cron", help="New cron expression.")
@click.option("--timezone", help="New IANA time zone.")
@click.option("--name", help="New name.")
@click.option("--payload", callback=_parse_json, metavar="JSON", help="New job payload, as JSON.")
@click.option("--job-data", callback=_parse_json, metavar="JSON", help="Same as --payload.")
@click.option("--enabled/--disabled", default=None, help="Resume or pause.")
@client_command
def update_schedule(session: Session, /, *, schedule: str, **changes: Any) -> None:
    """Change SCHEDULE (options not given are left as they are)."""
    if all(value is None for value in changes.values()):
        raise click.UsageError("Nothing to update: pass at least one option.")
    with session.client() as rotor:
        updated = rotor.schedules.update(schedule, **changes)
    session.output.emit(updated, _render_saved("Updated"))


@schedules.command("pause")
@click.argument("schedule")
@client_command
def pause_schedule(session: Session, /, *, schedule: str) -> None:
    """Stop SCHEDULE's ticks until resumed (jobs already enqueued are not affected)."""
    with session.client() as rotor:
        updated = rotor.schedules.pause(schedule)
    session.output.emit(updated, lambda out, s: out.line(f"Schedule {s.get('name')} is paused."))


@schedules.command("resume")
@click.argument("schedule")
@client_command
def resume_schedule(session: Session, /, *, schedule: str) -> None:
    """Resume SCHEDULE from its next cron time after now."""
    with session.client() as rotor:
        updated = rotor.schedules.resume(schedule)
    session.output.emit(updated, _render_resumed)


@schedules.command("delete")
@click.argument("schedule")
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@client_command
def delete_schedule(session: Session, /, *, schedule: str, force: bool) -> None:
    """Delete SCHEDULE; it stops firing at once (its run history is kept)."""
    if not force:
        click.confirm(f"Delete schedule {schedule!r}?", abort=True, err=True)
    with session.client() as rotor:
        rotor.schedules.delete(schedule)
    session.output.emit({"schedule": schedule, "deleted": True}, lambda out, _: out.line(f"Deleted schedule {schedule}."))


@schedules.command("fire-now")
@click.argument("schedule")
@client_command
def fire_now(session: Session, /, *, schedule: str) -> None:
    """Enqueue SCHEDULE's job now; its next cron fire time does not move."""
    with session.client() as rotor:
        fired = rotor.schedules.fire_now(schedule)
    session.output.emit(fired, lambda out, f: out.line(f"Enqueued job {f.get('jobId')} (run {f.get('runId')})."))


@schedules.command("runs")
@click.argument("schedule")
@click.option("--limit", type=click.IntRange(1, 500), help="Runs per page (default 50).")
@click.option("--cursor", help="Page cursor printed by the previous call.")
@client_command
def list_runs(session: Session, /, *, schedule: str, limit: int | None, cursor: str | None) -> None:
    """List SCHEDULE's runs (cron ticks and manual fires), newest first."""
    with session.client() as rotor:
        page = rotor.schedules.runs(schedule).list(limit=limit, cursor=cursor)
    session.output.emit(page, render_run_page)


@schedules.command("preview")
@click.option("--cron", required=True, help="Cron expression to preview.")
@click.option("--timezone", required=True, help="IANA time zone.")
@click.option("--from", "start", metavar="TIMESTAMP", help="Start after this time (ISO 8601; default now).")
@click.option("--count", type=click.IntRange(1, 50), help="How many fire times (default 5).")
@client_command
def preview(session: Session, /, *, cron: str, timezone: str, start: str | None, count: int | None) -> None:
    """Show the next fire times of a cron in a time zone, and what the cron means."""
    with session.client() as rotor:
        result = rotor.schedules.preview(cron, timezone, from_=start, count=count)
    session.output.emit(result, _render_preview(timezone))


# Rendering -------------------------------------------------------------------


def render_schedule_table(output: Output, page: dict[str, Any]) -> None:
    """The `schedules list` table."""
    items = page.get("data") or []
    if not items:
        output.line("No schedules yet. Create one with: rotor schedules create --queue Q --cron CRON --timezone TZ")
        return
    output.table(
        ["NAME", "CRON", "TIMEZONE", "NEXT FIRE", "ENABLED"],
        (
            [s.get("name"), s.get("cron"), s.get("timezone"), local_time(s.get("next_fire_at"), s.get("timezone")),
             s.get("enabled")]
            for s in items
        ),
    )
    output.next_page(page)


def render_schedule(output: Output, schedule: dict[str, Any]) -> None:
    """Every field of a schedule, then its latest runs."""
    zone = schedule.get("timezone")
    output.fields([
        ("ID", schedule.get("external_id") or schedule.get("id")),
        ("Name", schedule.get("name")),
        ("Queue", schedule.get("queue")),
        ("Cron", schedule.get("cron")),
        ("Means", schedule.get("description")),
        ("Timezone", zone),
        ("Enabled", schedule.get("enabled")),
        ("Next fire", local_time(schedule.get("next_fire_at"), zone)),
        ("Last fired", local_time(schedule.get("last_fired_at"), zone)),
        ("Created", schedule.get("created_at")),
        ("Updated", schedule.get("updated_at")),
    ])
    output.block("Payload", schedule.get("payload"))
    runs = schedule.get("runs")
    if runs:
        output.line()
        _run_table(output, runs, title="Latest runs")


def render_run_page(output: Output, page: dict[str, Any]) -> None:
    runs = page.get("runs") or []
    if not runs:
        output.line("No runs yet.")
        return
    _run_table(output, runs)
    output.next_page(page)


def _run_table(output: Output, runs: list[dict[str, Any]], title: str | None = None) -> None:
    output.table(
        ["RUN", "SCHEDULED FOR", "FIRED AT", "JOB", "MANUAL", "CALLBACK", "ERROR"],
        (
            [r.get("id"), r.get("scheduled_for"), r.get("fired_at"), r.get("job_id"), r.get("manual"),
             r.get("callback_status"), r.get("error")]
            for r in runs
        ),
        title=title,
    )


def _render_preview(zone: str) -> Callable[[Output, dict[str, Any]], None]:
    def render(output: Output, result: dict[str, Any]) -> None:
        output.line(str(result.get("description", "")))
        for moment in result.get("next") or []:
            output.line(f"  {local_time(moment, zone)}  ({moment})")

    return render


def _render_saved(verb: str) -> Callable[[Output, dict[str, Any]], None]:
    def render(output: Output, schedule: dict[str, Any]) -> None:
        output.line(f"{verb} schedule {schedule.get('name')} ({schedule.get('external_id') or schedule.get('id')}).")
        output.line()
        render_schedule(output, schedule)

    return render


def _render_resumed(output: Output, schedule: dict[str, Any]) -> None:
    next_fire = local_time(schedule.get("next_fire_at"), schedule.get("timezone"))
    output.line(f"Schedule {schedule.get('name')} is enabled; next fire {next_fire}.")


def local_time(moment: str | None, zone: str | None) -> str | None:
    """An API timestamp shown in the schedule's zone with its offset, e.g. 2026-05-21T09:00:00-04:00."""
    if not moment:
        return None
    try:
        parsed = datetime.fromisoformat(moment)
        return parsed.astimezone(ZoneInfo(zone or "UTC")).isoformat(timespec="seconds")
    except (ValueError, ZoneInfoNotFoundError):
        return moment

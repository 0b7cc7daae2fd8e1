"""`rotor status` (server health and quota, optionally watched) and `rotor usage`."""

from __future__ import annotations

import time
from typing import Any

import click

from rotor_lite.cli.client.context import Session, client_command
from rotor_lite.cli.client.output import Output, format_count
from rotor_lite.cli.client.queues import render_queue_table
from rotor_lite.sdk import Rotor, RotorAPIError, RotorError

__all__ = ["status", "usage"]

# replaced by tests to end a --watch loop
sleep = time.sleep


@click.command("status")
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C, with a summary of the queues.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.5),
    default=5.0,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
@client_command
def status(session: Session, /, *, watch: bool, interval: float) -> None:
    """Show API and database health, version, plan and quota."""
    with session.client() as rotor:
        if watch:
            _watch(session.output, rotor, interval)
        else:
            session.output.emit(rotor.status.get(), render_status)


@click.command("usage")
@client_command
def usage(session: Session, /) -> None:
    """Show this period's accepted jobs, in total and per queue."""
    with session.client() as rotor:
        session.output.emit(rotor.usage.current(), render_usage)


def render_status(output: Output, status: dict[str, Any]) -> None:
    """The status lines of the reference CLI: API, Database, Version, Plan, Quota, Resets."""
    quota = status.get("quota") or {}
    limit = quota.get("limit")
    limit_text = "unlimited" if limit is None else format_count(limit)
    output.line(f"API: {status.get('api', '-')}")
    output.line(f"Database: {status.get('database', '-')}")
    output.line(f"Version: {status.get('version', '-')}")
    output.line(f"Plan: {quota.get('plan') or '-'}")
    output.line(f"Quota: {format_count(quota.get('used', 0))} / {limit_text} jobs used this period")
    output.line(f"Resets: {_date(quota.get('resetAt'))}")
    for number, helper in enumerate(status.get("deliveryHelpers") or []):
        state = "alive" if helper.get("alive") else "restarting"
        output.line(f"Delivery helper {number}: pid {helper.get('pid') or '-'}, {state}, {helper.get('inFlight', 0)} in flight, "
                    f"{format_count(helper.get('delivered', 0))} delivered, {helper.get('restarts', 0)} restarts")


def render_usage(output: Output, usage: dict[str, Any]) -> None:
    """The period, its total, and a table of jobs per queue (largest first)."""
    period = usage.get("period") or {}
    executions = usage.get("executions") or {}
    by_queue = executions.get("byQueue") or {}
    output.line(f"Period: {_date(period.get('from'))} to {_date(period.get('to'))}")
    output.line(f"Jobs accepted: {format_count(executions.get('total', 0))}")
    if by_queue:
        output.line()
        rows = sorted(by_queue.items(), key=lambda item: (-item[1], item[0]))
        output.table(["QUEUE", "JOBS"], ([name, format_count(count)] for name, count in rows))


def _watch(output: Output, rotor: Rotor, interval: float) -> None:
    try:
        while True:
            _refresh(output, rotor)
            sleep(interval)
    except KeyboardInterrupt:
        pass


def _refresh(output: Output, rotor: Rotor) -> None:
    try:
        snapshot = {"status": rotor.status.get(), "queues": rotor.queues.list().get("data", [])}
    except RotorAPIError:
        raise
    except RotorError as exc:
        # keep watching through a restart of the server
        output.error(f"Error: {exc}")
        return
    if output.json_mode:
        if not output.quiet:
            output.json(snapshot, compact=True)
        return
    output.clear()
    output.emit(snapshot, _render_snapshot)


def _render_snapshot(output: Output, snapshot: dict[str, Any]) -> None:
    render_status(output, snapshot["status"])
    output.line()
    render_queue_table(output, {"data": snapshot["queues"]})
    output.line()
    output.line(f"Updated {time.strftime('%H:%M:%S')}. Ctrl-C to stop.", style="dim")


def _date(value: Any) -> str:
    return str(value)[:10] if value else "-"

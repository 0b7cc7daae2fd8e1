"""`rotor functions|events|runs|signals ...`: durable workflows from the terminal."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from rich.text import Text
from rich.tree import Tree

from rotor_lite.cli.client.approvals import payload_preview
from rotor_lite.cli.client.context import Session, client_command
from rotor_lite.cli.client.output import Output

__all__ = ["events", "functions", "runs", "signals"]

_RUN_STATUSES = ["pending", "running", "sleeping", "waiting", "completed", "failed", "cancelled"]
_MARKS = {"completed": "✓", "failed": "✗", "cancelled": "⊘", "sleeping": "☾", "waiting": "…", "running": "▶",
          "scheduled": "·", "pending": "·"}
_CHILD_DEPTH = 3


def _json_option(text: str | None, name: str) -> Any:
    if text is None:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc.msg}", param_hint=name) from exc


# functions ------------------------------------------------------------------------------


@click.group("functions")
def functions() -> None:
    """Workflow functions: where each is served and what starts its runs."""


@functions.command("list")
@click.option("--limit", type=click.IntRange(1, 500), help="Functions per page (default 50).")
@click.option("--cursor", help="Page cursor printed by the previous call.")
@client_command
def list_functions(session: Session, /, **page: Any) -> None:
    """List the workspace's functions."""
    with session.client() as rotor:
        result = rotor.functions.list(**page)
    session.output.emit(result, _render_function_table)


@functions.command("get")
@click.argument("function_id")
@client_command
def get_function(session: Session, /, *, function_id: str) -> None:
    """Show function FUNCTION_ID."""
    with session.client() as rotor:
        fn = rotor.functions.get(function_id)
    session.output.emit(fn, _render_function)


@functions.command("register")
@click.argument("function_id")
@click.option("--serve-url", required=True, help="Where rotor-lite calls the app that serves the function.")
@click.option("--event", help="The event that starts a run (event-triggered functions).")
@click.option("--cron", help="A cron expression that starts a run (cron-triggered functions; needs --timezone).")
@click.option("--timezone", help="IANA time zone of --cron, e.g. Europe/Paris.")
@click.option("--retries", type=click.IntRange(0, 20), help="Retries of a failed step or call (default 3).")
@click.option("--concurrency", type=click.IntRange(min=1), help="Calls of this function in flight at once.")
@click.option("--hook", "hooks", multiple=True, type=click.Choice(["on_success", "on_failure", "on_cancel"]),
              help="A lifecycle hook the app declares; repeat for several.")
@client_command
def register_function(session: Session, /, *, function_id: str, hooks: tuple[str, ...], **fields: Any) -> None:
    """Register FUNCTION_ID (or update it: registering is idempotent)."""
    if not fields["event"] and not fields["cron"]:
        raise click.UsageError("give --event or --cron (with --timezone)")
    with session.client() as rotor:
        fn = rotor.functions.register(function_id, hooks=list(hooks), **fields)
    session.output.emit(fn, _render_function)


@functions.command("delete")
@click.argument("function_id")
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@client_command
def delete_function(session: Session, /, *, function_id: str, force: bool) -> None:
    """Delete FUNCTION_ID (its runs are kept)."""
    if not force:
        click.confirm(f"Delete function {function_id}?", abort=True)
    with session.client() as rotor:
        rotor.functions.delete(function_id)
    session.output.emit({"deleted": function_id}, lambda out, _: out.line(f"Deleted function {function_id}."))


@functions.command("signing-key")
@click.option("--rotate", is_flag=True, help="Make a new key; the previous one keeps signing for 24 hours.")
@client_command
def signing_key(session: Session, /, *, rotate: bool) -> None:
    """Print the key your app's serve_workflow(signing_key=...) verifies calls with (admin keys only)."""
    with session.client() as rotor:
        keys = rotor.functions.rotate_signing_key() if rotate else rotor.functions.signing_key()
    session.output.emit(keys, lambda out, k: out.line(str(k.get("signingKey"))))


def _render_function_table(output: Output, page: dict[str, Any]) -> None:
    items = page.get("data") or []
    if not items:
        output.line("No functions yet. Register one with: rotor functions register ID --serve-url URL --event NAME")
    else:
        output.table(
            ["ID", "TRIGGER", "SERVE URL", "RETRIES", "UPDATED"],
            ([f.get("id"), _trigger(f), f.get("serve_url"), f.get("retries"), f.get("updatedAt")] for f in items),
        )
    output.next_page(page)


def _render_function(output: Output, fn: dict[str, Any]) -> None:
    output.fields([
        ("ID", fn.get("id")), ("Trigger", _trigger(fn)), ("Serve URL", fn.get("serve_url")),
        ("Retries", fn.get("retries")), ("Concurrency", fn.get("concurrency")), ("Hooks", ", ".join(fn.get("hooks") or []) or None),
        ("Created", fn.get("createdAt")), ("Updated", fn.get("updatedAt")),
    ])


def _trigger(fn: dict[str, Any]) -> str:
    if fn.get("trigger_type") == "cron":
        return f"cron {fn.get('cron')} ({fn.get('timezone')})"
    return f"event {fn.get('trigger_event')}"


# events ----------------------------------------------------------------------------------


@click.group("events")
def events() -> None:
    """Send events: they start the functions they trigger and resume the runs waiting for them."""


@events.command("send")
@click.argument("name")
@click.option("--data", help="The event's data as JSON (default {}).")
@click.option("--idempotency-key", help="Sent again with the same key, the event starts no new run.")
@click.option("--ts", type=int, help="Epoch milliseconds; a future time defers the event.")
@client_command
def send_event(session: Session, /, *, name: str, data: str | None, idempotency_key: str | None, ts: int | None) -> None:
    """Send the event NAME."""
    with session.client() as rotor:
        sent = rotor.send(name, _json_option(data, "--data"), idempotency_key=idempotency_key, ts=ts)
    session.output.emit(sent, _render_sent)


def _render_sent(output: Output, sent: dict[str, Any]) -> None:
    run_ids = sent.get("runIds") or []
    if sent.get("duplicate"):
        output.line(f"Duplicate event: no new run ({', '.join(run_ids)} already started for this key).")
    elif sent.get("deferred"):
        output.line(f"Event {sent.get('id')} is deferred until its ts.")
    else:
        output.line(f"Event {sent.get('id')}: started {len(run_ids)} run(s), resumed {sent.get('resumed', 0)}.")
    for run_id in run_ids:
        output.line(f"  {run_id}")


# runs --------------------------------------------------------------------------------------


@click.group("runs")
def runs() -> None:
    """Workflow runs: list them, see a run's steps, cancel, replay."""


@runs.command("list")
@click.option("--function", help="Only runs of this function.")
@click.option("--status", type=click.Choice(_RUN_STATUSES), help="Only runs in this status.")
@click.option("--from", "since", help="Created at or after this ISO time.")
@click.option("--to", "until", help="Created before this ISO time.")
@click.option("--limit", type=click.IntRange(1, 500), help="Runs per page (default 50).")
@click.option("--cursor", help="Page cursor printed by the previous call.")
@client_command
def list_runs(session: Session, /, **filters: Any) -> None:
    """List runs, newest first."""
    with session.client() as rotor:
        page = rotor.runs.list(**filters)
    session.output.emit(page, _render_run_table)


@runs.command("get")
@click.argument("run_id")
@client_command
def get_run(session: Session, /, *, run_id: str) -> None:
    """Show run RUN_ID as a tree of its steps (status, timing, attempts, output), children included."""
    with session.client() as rotor:
        run = rotor.runs.get(run_id)
        children = _children(rotor, run, _CHILD_DEPTH)
    session.output.emit(run, lambda out, r: out.console.print(_run_tree(r, children)))


@runs.command("cancel")
@click.argument("run_id")
@client_command
def cancel_run(session: Session, /, *, run_id: str) -> None:
    """Cancel RUN_ID and its children: steps in flight finish, the rest are skipped."""
    with session.client() as rotor:
        run = rotor.runs.cancel(run_id)
    session.output.emit(run, lambda out, r: out.line(f"Run {run_id} is {r.get('status')}."))


@runs.command("replay")
@click.argument("run_id")
@client_command
def replay_run(session: Session, /, *, run_id: str) -> None:
    """Start failed or cancelled RUN_ID again as a new run that keeps its completed steps."""
    with session.client() as rotor:
        run = rotor.runs.replay(run_id)
    session.output.emit(run, lambda out, r: out.line(f"Replaying {run_id} as {r.get('id')}."))


def _render_run_table(output: Output, page: dict[str, Any]) -> None:
    items = page.get("data") or []
    if not items:
        output.line("No runs found.")
    else:
        output.table(
            ["ID", "FUNCTION", "STATUS", "EVENT", "CREATED", "DURATION"],
            (
                [r.get("id"), r.get("functionId"), r.get("status"), (r.get("event") or {}).get("name"), r.get("createdAt"),
                 _duration(r.get("startedAt"), r.get("endedAt"))]
                for r in items
            ),
        )
    output.next_page(page)


def _children(rotor: Any, run: dict[str, Any], depth: int) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Child runs by id (each with its own children), fetched `depth` levels down."""
    if depth == 0:
        return {}
    found = {}
    for child_id in run.get("childRunIds") or []:
        child = rotor.runs.get(child_id)
        found[child_id] = (child, _children(rotor, child, depth - 1))
    return found


def _run_tree(run: dict[str, Any], children: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> Tree:
    tree = Tree(_run_label(run))
    for step in run.get("steps") or []:
        node = tree.add(_step_label(step))
        child = children.get(step.get("childRunId") or "")
        if child is not None:
            node.add(_run_tree(*child))
    for hook_error in run.get("hookErrors") or []:
        tree.add(Text(f"hook {hook_error.get('hook')} failed: {hook_error.get('message')}", style="red"))
    return tree


def _run_label(run: dict[str, Any]) -> Text:
    status = str(run.get("status"))
    text = Text(f"{_MARKS.get(status, '?')} {run.get('id')} ", style="bold")
    text.append(f"{run.get('functionId')} {status}", style=_style(status))
    text.append(f"  event {(run.get('event') or {}).get('name')}, attempt {run.get('attempt')}")
    duration = _duration(run.get("startedAt"), run.get("endedAt"))
    if duration:
        text.append(f", {duration}")
    error = run.get("error")
    if error:
        text.append(f"\n  error {error.get('name')}: {error.get('message')}", style="red")
    if run.get("output") is not None:
        text.append(f"\n  output {payload_preview(run.get('output'), 100)}")
    return text


def _step_label(step: dict[str, Any]) -> Text:
    status = str(step.get("status"))
    text = Text(f"{_MARKS.get(status, '?')} {step.get('id')} ", style=_style(status))
    text.append(f"({step.get('type')}) {status}")
    details = [detail for detail in (
        _duration(step.get("startedAt"), step.get("endedAt")),
        f"{step.get('attempts')} attempt(s)" if step.get("attempts") else None,
        f"wakes {step.get('wakeAt')}" if step.get("wakeAt") else None,
        f"signal {step.get('signal')}" if step.get("signal") else None,
        f"event {step.get('event')}" if step.get("event") else None,
        f"child {step.get('childRunId')}" if step.get("childRunId") else None,
    ) if detail]
    if details:
        text.append("  " + ", ".join(details))
    if step.get("error"):
        text.append(f"\n  {step['error'].get('name')}: {step['error'].get('message')}", style="red")
    elif step.get("output") is not None:
        text.append(f"\n  → {payload_preview(step.get('output'), 100)}")
    return text


def _style(status: str) -> str:
    return {"completed": "green", "failed": "red", "cancelled": "yellow"}.get(status, "cyan")


def _duration(started: str | None, ended: str | None) -> str | None:
    if not started or not ended:
        return None
    millis = (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds() * 1000
    return f"{millis:.0f} ms" if millis < 10_000 else f"{millis / 1000:.1f} s"


# signals -------------------------------------------------------------------------------------


@click.group("signals")
def signals() -> None:
    """Resume runs waiting in step.wait_for_signal."""


@signals.command("complete")
@click.argument("signal_id")
@click.option("--data", required=True, help="What the waiting step returns, as JSON.")
@click.option("--run-id", help="Refuse (409) unless this run is the one waiting.")
@client_command
def complete_signal(session: Session, /, *, signal_id: str, data: str, run_id: str | None) -> None:
    """Complete SIGNAL_ID with --data: the run waiting on it resumes."""
    with session.client() as rotor:
        result = rotor.signals.complete(signal_id, _json_option(data, "--data"), run_id=run_id)
    session.output.emit(result, lambda out, r: out.line(f"Signal {signal_id} completed: run {r.get('runId')} resumes."))

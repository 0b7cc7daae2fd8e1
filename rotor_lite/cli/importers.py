"""`rotor import ...`: bring cron jobs and functions over from other services.

`rotor import vercel-cron vercel.json --base-url https://my-app.example.com` reads the `crons[]`
of a `vercel.json` and prints one queue and one schedule per entry as JSON lines, the shape the
reference docs' import script emits; `--apply` creates them on the server (an existing queue or
an identical schedule is left alone, so applying twice is harmless).

`rotor import inngest ./inngest` reads the `createFunction(...)` calls of a TypeScript/JavaScript
tree (rotor_lite.cli.inngest) and prints queues and schedules, or with `--serve-url` workflow
function registrations; `--apply` creates them after asking (`--yes` does not ask).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from rotor_lite.cli.client.context import Session, client_command
from rotor_lite.cli.client.output import Output
from rotor_lite.sdk import Rotor, RotorConflict

__all__ = ["import_group", "vercel_plan"]

PLACEHOLDER_BASE_URL = "https://YOUR_DOMAIN"
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_.:-]+")


@click.group("import")
def import_group() -> None:
    """Import cron jobs and functions from other services (Vercel Cron, Inngest)."""


@import_group.command("vercel-cron")
@click.argument("vercel_json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--base-url", default=PLACEHOLDER_BASE_URL, show_default=True,
    help="Your app's production URL; each cron's path is appended to it as the queue's callback URL.",
)
@click.option("--timezone", default="UTC", show_default=True, help="IANA zone of the schedules (Vercel Cron runs in UTC).")
@click.option("--apply", is_flag=True, help="Create the queues and schedules on the server instead of only printing them.")
@client_command
def vercel_cron(session: Session, /, *, vercel_json: Path, base_url: str, timezone: str, apply: bool) -> None:
    """Turn the crons[] of VERCEL_JSON into Rotor queues and schedules (JSON lines)."""
    plan = vercel_plan(_read_crons(vercel_json), base_url, timezone)
    if not apply:
        for line in plan:
            session.output.line(json.dumps(line, separators=(",", ":")))
        return
    _check_base_url(base_url)
    with session.client() as rotor:
        for line in plan:
            session.output.emit(_APPLY[line["type"]](rotor, line["config"]), _render_result)


@import_group.command("inngest")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--serve-url", metavar="URL",
    help="Where your app serves its rotor-lite workflow functions (serve_workflow): import each Inngest "
         "function as a workflow function registered at URL instead of a queue.",
)
@click.option("--base-url", metavar="URL", help="Queue mode: your app's URL; each queue's callback URL is URL/<function id>.")
@click.option("--timezone", default="UTC", show_default=True,
              help="IANA zone of cron triggers without a TZ= prefix (Inngest runs those in UTC).")
@click.option("--apply", is_flag=True, help="Create what is printed on the server (asks first).")
@click.option("--yes", "-y", is_flag=True, help="With --apply: do not ask.")
@client_command
def inngest(
    session: Session, /, *, path: Path, serve_url: str | None, base_url: str | None, timezone: str, apply: bool,
    yes: bool,
) -> None:
    """Turn the Inngest createFunction(...) calls under PATH into rotor-lite resources (JSON lines).

    PATH is a .ts/.tsx/.js file or a directory (node_modules and hidden directories are skipped).
    The sources are parsed, never run: only literal ids, triggers, retries and concurrency are read,
    and every shape that cannot be read (a computed id, spread options, a trigger held in a variable,
    options such as throttle or cancelOn) is a warning on stderr.

    \b
    Without --serve-url (the reference's mapping: Inngest handlers become callback queues):
      {"type":"queue","config":{"name":ID,"concurrency":N,"retry_attempts":RETRIES+1,"notes":"event: user/created"}}
      {"type":"schedule","config":{"queue":ID,"cron":"0 2 * * *","timezone":"UTC"}}   (one per cron trigger)
    Replace inngest.send({name, data}) with an enqueue to the queue named in the notes.

    \b
    With --serve-url URL (your functions rewritten with rotor-lite's Python SDK, served at URL):
      {"type":"function","config":{"id":ID,"serve_url":URL,"trigger_type":"event","trigger_event":"user/created",...}}
    Event names are kept (rotor-lite accepts user/created); a function with several triggers is
    registered with its first, and a warning names the others.

    A cron of the form "TZ=Europe/Paris 0 12 * * 5" keeps its zone; others get --timezone.
    """
    from rotor_lite.cli.inngest import inngest_plan, read_functions  # tree-sitter only for this command

    if serve_url and base_url:
        raise click.UsageError("--base-url is for queues and --serve-url for workflow functions: give one")
    found = read_functions(path)
    plan = inngest_plan(found, timezone=timezone, serve_url=serve_url, base_url=base_url)
    for warning in found.warnings:
        click.echo(f"warning: {warning}", err=True)
    if not found.functions:
        click.echo(f"warning: no createFunction(...) call read under {path}", err=True)
    if not apply:
        for line in plan:
            session.output.line(json.dumps(line, separators=(",", ":")))
        return
    if plan and not yes:
        _confirm(plan, session.api_url)
    with session.client() as rotor:
        for line in plan:
            session.output.emit(_APPLY[line["type"]](rotor, line["config"]), _render_result)


def _confirm(plan: list[dict[str, Any]], api_url: str) -> None:
    click.echo(f"To create on {api_url}:", err=True)
    for line in plan:
        config = line["config"]
        click.echo(f"  {line['type']} {config.get('name') or config.get('id') or config.get('queue')}: "
                   f"{json.dumps(config, separators=(',', ':'))}", err=True)
    click.confirm("Create them?", abort=True, err=True)


def _read_crons(path: Path) -> list[dict[str, Any]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read {path} as JSON: {exc}") from exc
    crons = document.get("crons") if isinstance(document, dict) else None
    if not isinstance(crons, list):
        raise click.ClickException(f"{path} has no \"crons\" array")
    for index, entry in enumerate(crons):
        if not (isinstance(entry, dict) and isinstance(entry.get("path"), str) and isinstance(entry.get("schedule"), str)):
            raise click.ClickException(f"crons[{index}] needs a string \"path\" and a string \"schedule\"")
        if not entry["path"].startswith("/"):
            raise click.ClickException(f"crons[{index}].path must start with '/' (got {entry['path']!r})")
    return crons


def vercel_plan(crons: list[dict[str, Any]], base_url: str, timezone: str) -> list[dict[str, Any]]:
    """The queue and schedule lines for `crons`: one queue per path, one schedule per entry."""
    lines: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in crons:
        name = queue_name_for(entry["path"])
        if name not in seen:
            seen.add(name)
            url = base_url.rstrip("/") + entry["path"]
            lines.append({"type": "queue", "config": {"name": name, "callback_url": url}})
        lines.append({"type": "schedule", "config": {"queue": name, "cron": entry["schedule"], "timezone": timezone}})
    return lines


def queue_name_for(path: str) -> str:
    """`/api/cron/daily-digest` → `cron-daily-digest` (what the reference import script names it)."""
    route = path.split("?", 1)[0].split("#", 1)[0].strip("/")
    route = route.removeprefix("api/")
    name = _NOT_IN_NAME.sub("-", route.replace("/", "-")).strip("-_.:")
    return name[:128] or "cron"


def _check_base_url(base_url: str) -> None:
    parts = urlsplit(base_url)
    if "YOUR_DOMAIN" in base_url or parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.UsageError("--apply needs --base-url set to your app's URL, e.g. https://my-app.vercel.app")


def _apply_queue(rotor: Rotor, config: dict[str, Any]) -> dict[str, Any]:
    fields = {key: value for key, value in config.items() if key not in ("name", "notes")}
    try:
        queue = rotor.queues.create(config["name"], **fields)
    except RotorConflict:
        return {"type": "queue", "name": config["name"], "status": "exists"}
    return {
        "type": "queue", "name": queue["name"], "status": "created", "callback_url": queue.get("callback_url"),
        "callback_secret": queue.get("callback_secret"),
    }


def _apply_schedule(rotor: Rotor, config: dict[str, Any]) -> dict[str, Any]:
    same = [
        s for s in _all_schedules(rotor)
        if (s.get("queue"), s.get("cron"), s.get("timezone")) == (config["queue"], config["cron"], config["timezone"])
    ]
    if same:
        return {"type": "schedule", **config, "status": "exists", "id": same[0].get("external_id")}
    created = rotor.schedules.create(**config)
    return {"type": "schedule", **config, "status": "created", "id": created.get("external_id"), "name": created.get("name")}


def _apply_function(rotor: Rotor, config: dict[str, Any]) -> dict[str, Any]:
    """Register (or update: registering is idempotent) the function; `config` is the API's body."""
    function = rotor.request("POST", "/v1/functions", json=config)
    trigger = function.get("trigger_event") or f"{function.get('cron')} ({function.get('timezone')})"
    return {"type": "function", "id": function["id"], "status": "registered", "trigger": trigger,
            "serve_url": function.get("serve_url")}


_APPLY = {"queue": _apply_queue, "schedule": _apply_schedule, "function": _apply_function}


def _all_schedules(rotor: Rotor) -> Iterator[dict[str, Any]]:
    cursor = None
    while True:
        page = rotor.schedules.list(limit=500, cursor=cursor)
        yield from page.get("data") or []
        cursor = page.get("nextCursor")
        if not cursor:
            return


def _render_result(output: Output, result: dict[str, Any]) -> None:
    if result["type"] == "function":
        output.line(f"Registered function {result['id']} ({result['trigger']}) → {result['serve_url']}")
        return
    if result["type"] == "queue":
        if result["status"] == "exists":
            output.line(f"Queue {result['name']} already exists; left unchanged.")
            return
        if not result.get("callback_url"):
            output.line(f"Created queue {result['name']} (no callback URL yet: rotor queues update {result['name']} "
                        "--callback-url URL)")
            return
        output.line(f"Created queue {result['name']} → {result['callback_url']}")
        if result.get("callback_secret"):
            output.line(f"  Callback secret (shown once; set it as ROTOR_CALLBACK_SECRET): {result['callback_secret']}")
        return
    where = f"on {result['queue']}: {result['cron']} ({result['timezone']})"
    if result["status"] == "exists":
        output.line(f"Schedule {where} already exists ({result['id']}); skipped.")
    else:
        output.line(f"Created schedule {result['name']} ({result['id']}) {where}")

"""`rotor import ...`: bring cron jobs over from other services.

`rotor import vercel-cron vercel.json --base-url https://my-app.example.com` reads the `crons[]`
of a `vercel.json` and prints one queue and one schedule per entry as JSON lines, the shape the
reference docs' import script emits; `--apply` creates them on the server (an existing queue or
an identical schedule is left alone, so applying twice is harmless).
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
    """Import cron jobs from other services as queues and schedules."""


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
            result = _apply_queue(rotor, line["config"]) if line["type"] == "queue" else _apply_schedule(rotor, line["config"])
            session.output.emit(result, _render_result)


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
    try:
        queue = rotor.queues.create(config["name"], callback_url=config["callback_url"])
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


def _all_schedules(rotor: Rotor) -> Iterator[dict[str, Any]]:
    cursor = None
    while True:
        page = rotor.schedules.list(limit=500, cursor=cursor)
        yield from page.get("data") or []
        cursor = page.get("nextCursor")
        if not cursor:
            return


def _render_result(output: Output, result: dict[str, Any]) -> None:
    if result["type"] == "queue":
        if result["status"] == "exists":
            output.line(f"Queue {result['name']} already exists; left unchanged.")
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

"""`rotor workspaces ...`: through the API; `create` works offline on the database when given --data-dir or --config."""

from __future__ import annotations

from typing import Any

import click

from rotor_lite.cli.client.context import Session, client_command
from rotor_lite.cli.client.output import Output, format_count

__all__ = ["workspaces"]

_PLANS = ("free", "pro", "team", "enterprise", "self-hosted")


@click.group("workspaces")
def workspaces() -> None:
    """List, inspect and create workspaces (through the API; `create --data-dir` works offline).

    `create` talks to the server with a team key (rt_team_); given --data-dir or --config it works on
    the database file directly instead, as the offline admin commands do (no key needed, safe while
    the server runs).
    """


@workspaces.command("list")
@client_command
def list_workspaces(session: Session, /) -> None:
    """List the workspaces your key reaches, with their plans."""
    with session.client() as rotor:
        response = rotor.workspaces.list()

    def render(out: Output, data: dict[str, Any]) -> None:
        out.table(["ID", "NAME", "PLAN", "JOBS/MONTH", "REQUESTS/MIN", "RETENTION", "CREATED"],
                  ([w.get("id"), w.get("name"), w.get("plan"), *_limits(w), str(w.get("createdAt") or "")[:10]]
                   for w in data.get("data") or []))

    session.output.emit(response, render)


@workspaces.command("get")
@click.argument("id_or_name", metavar="WORKSPACE")
@client_command
def get_workspace(session: Session, /, *, id_or_name: str) -> None:
    """Show WORKSPACE (id or name): its plan and limits."""
    with session.client() as rotor:
        session.output.emit(rotor.workspaces.get(id_or_name), _render_workspace)


@workspaces.command("create")
@click.argument("name")
@click.option("--plan", type=click.Choice(_PLANS), default="self-hosted", show_default=True,
              help="Sets the requests per minute, monthly job quota and retention days.")
@click.option("--data-dir", help="Create it offline in this data directory instead of through the API.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Create it offline with this rotor.toml's data directory instead of through the API.")
@client_command
def create_workspace(session: Session, /, *, name: str, plan: str, data_dir: str | None, config_file: str | None) -> None:
    """Create workspace NAME and print its first admin API key once.

    Through the API this needs a team admin key, which reaches the new workspace from then on; with
    --data-dir or --config it works on the database file directly (the key then never expires).
    """
    if data_dir is not None or config_file is not None:
        from rotor_lite.cli.admin import create_workspace_offline  # the server's modules: only offline

        create_workspace_offline(name=name, plan=plan, config_file=config_file, data_dir=data_dir,
                                 as_json=session.output.json_mode)
        return
    if not session.api_key:
        raise click.ClickException("No API key for the server: pass a team key (--api-key, ROTOR_API_KEY, `rotor login`),"
                                   " or --data-dir DIR to create the workspace offline in the database.")
    with session.client() as rotor:
        created = rotor.workspaces.create(name, plan=plan)

    def render(out: Output, data: dict[str, Any]) -> None:
        _render_workspace(out, data)
        out.line()
        out.line(f"API key (admin, shown once): {(data.get('apiKey') or {}).get('key')}", style="bold yellow")

    session.output.emit(created, render)


def _render_workspace(out: Output, workspace: dict[str, Any]) -> None:
    jobs, requests, retention = _limits(workspace)
    out.fields([("ID", workspace.get("id")), ("Name", workspace.get("name")), ("Plan", workspace.get("plan")),
                ("Jobs per month", jobs), ("Requests per minute", requests), ("Retention", retention),
                ("Created", workspace.get("createdAt"))])


def _limits(workspace: dict[str, Any]) -> tuple[str, str, str]:
    limits = workspace.get("limits") or {}
    jobs, requests = limits.get("jobsPerMonth"), limits.get("requestsPerMinute")
    return ("unlimited" if jobs is None else format_count(jobs), "unlimited" if requests is None else format_count(requests),
            f"{limits.get('retentionDays')} days")

"""`rotor login`: check an API key against the server and save it for later commands."""

from __future__ import annotations

from typing import Any

import click

from rotor_lite.cli.client import context
from rotor_lite.cli.client.output import Output

__all__ = ["login"]


@click.command("login")
@context.global_options
def login(*, api_key: str | None, api_url: str | None, workspace: str | None, json_output: bool, quiet: bool) -> None:
    """Save an API key (and server URL) to ~/.rotor/config.json, mode 0600.

    Prompts for the key when --api-key is not given, and checks it with GET /v1/status first.
    With --workspace (a team key's), saves that workspace too.
    """
    output = Output(json_mode=json_output, quiet=quiet)
    config = context.load_config()
    key = (api_key or click.prompt("API key", hide_input=True, err=True)).strip()
    if not key:
        raise click.BadParameter("the API key is empty", param_hint="--api-key")
    url = context.resolve_api_url(api_url, config)
    with context.api_errors(output), context.client_factory(key, url) as rotor:
        rotor.workspace = workspace or rotor.workspace
        status = rotor.status.get()
    path = context.save_config({**config, "apiKey": key, "apiUrl": url} | ({"workspace": workspace} if workspace else {}))
    output.emit({"saved": str(path), "apiUrl": url, "status": status}, _render_login)


def _render_login(output: Output, result: dict[str, Any]) -> None:
    status = result["status"] if isinstance(result["status"], dict) else {}
    plan = (status.get("quota") or {}).get("plan")
    version = status.get("version")
    server = f"rotor-lite {version}" if version else "rotor-lite"
    output.line(f"Logged in to {result['apiUrl']} ({server}{f', plan {plan}' if plan else ''}).")
    output.line(f"Saved to {result['saved']} (mode 0600).")

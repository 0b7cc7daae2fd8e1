"""`rotor api-keys ...`: mint, list, rotate and revoke the workspace's API keys through the API (admin keys)."""

from __future__ import annotations

from typing import Any

import click

from rotor_lite.cli.client.context import Session, client_command
from rotor_lite.cli.client.output import Output

__all__ = ["api_keys", "render_key"]

_ROLES = ("admin", "developer", "approver", "viewer")


@click.group("api-keys")
def api_keys() -> None:
    """Create, list, rotate and revoke API keys (through the API; offline: `rotor-lite keys create`)."""


@api_keys.command("create")
@click.option("--label", required=True, help="A label to recognise the key by (e.g. claude-code).")
@click.option("--role", type=click.Choice(_ROLES), help="What the key may do (default viewer); never more than your own key.")
@click.option("--queue", help="An rt_q_ key for this queue only: enqueue and read its jobs and stats.")
@click.option("--type", "key_type", type=click.Choice(("workspace", "queue", "team")),
              help="workspace (rt_ws_, the default), queue (rt_q_, with --queue) or team (rt_team_, several workspaces).")
@click.option("--workspaces", metavar="LIST",
              help="A team key's workspaces (ids or names, comma-separated); the current one is always included.")
@click.option("--expires-in-days", type=click.IntRange(1, 365),
              help="Days until the key expires (default 90, and never after the key you call with).")
@click.option("--never-expires", is_flag=True, help="The key never expires (admin keys only).")
@client_command
def create_key(
    session: Session, /, *, label: str, role: str | None, queue: str | None, key_type: str | None,
    workspaces: str | None, expires_in_days: int | None, never_expires: bool,
) -> None:
    """Mint an API key and print it once."""
    named = None if workspaces is None else [w.strip() for w in workspaces.split(",") if w.strip()]
    with session.client() as rotor:
        created = rotor.api_keys.create(label, role=role, type=key_type, queue=queue, workspaces=named,
                                        expires_in_days=expires_in_days, never_expires=never_expires)
    session.output.emit(created, _render_created)


@api_keys.command("list")
@client_command
def list_keys(session: Session, /) -> None:
    """List the workspace's keys: prefix, label, role, scope, created, expires, last used."""
    with session.client() as rotor:
        response = rotor.api_keys.list()

    def render(out: Output, data: dict[str, Any]) -> None:
        out.table(["ID", "PREFIX", "LABEL", "ROLE", "SCOPE", "CREATED", "EXPIRES", "LAST USED", "REVOKED"],
                  ([k.get("id"), k.get("prefix"), k.get("label"), k.get("role"), _scope(k), _day(k.get("createdAt")),
                    _day(k.get("expiresAt")) or "never", _day(k.get("lastUsedAt")), _day(k.get("revokedAt"))]
                   for k in data.get("data") or []))

    session.output.emit(response, render)


@api_keys.command("get")
@click.argument("key_id")
@client_command
def get_key(session: Session, /, *, key_id: str) -> None:
    """Show key KEY_ID (never its key material)."""
    with session.client() as rotor:
        session.output.emit(rotor.api_keys.get(key_id), render_key)


@api_keys.command("rotate")
@click.argument("key_id")
@click.option("--grace-seconds", type=click.FloatRange(min=0), help="How long the old key keeps working (default 3600).")
@client_command
def rotate_key(session: Session, /, *, key_id: str, grace_seconds: float | None) -> None:
    """Replace key KEY_ID by a new one with the same role, scope and expiry; prints the new key once."""
    with session.client() as rotor:
        created = rotor.api_keys.rotate(key_id, grace_seconds=grace_seconds)
    session.output.emit(created, _render_created)


@api_keys.command("revoke")
@click.argument("key_id")
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@client_command
def revoke_key(session: Session, /, *, key_id: str, force: bool) -> None:
    """Revoke key KEY_ID at once: its next request is refused."""
    if not force:
        click.confirm(f"Revoke API key {key_id}?", abort=True, err=True)
    with session.client() as rotor:
        rotor.api_keys.revoke(key_id)
    session.output.emit({"id": key_id, "revoked": True}, lambda out, _: out.line(f"Revoked API key {key_id}."))


def render_key(out: Output, key: dict[str, Any]) -> None:
    """A key's fields, as `get` shows them."""
    out.fields([
        ("ID", key.get("id")), ("Prefix", key.get("prefix")), ("Label", key.get("label")), ("Role", key.get("role")),
        ("Scope", _scope(key)), ("Created", key.get("createdAt")), ("Expires", key.get("expiresAt") or "never"),
        ("Last used", key.get("lastUsedAt")), ("Revoked", key.get("revokedAt")),
    ])


def _render_created(out: Output, key: dict[str, Any]) -> None:
    render_key(out, key)
    out.line()
    out.line(f"API key: {key.get('key')}", style="bold yellow")
    out.line("Copy this — it's shown once.", style="yellow")


def _scope(key: dict[str, Any]) -> str:
    if key.get("type") == "queue":
        return f"queue {key.get('queue')}"
    if key.get("type") == "team":
        return "team: " + ", ".join(key.get("workspaces") or [])
    return "workspace"


def _day(value: Any) -> str | None:
    return str(value)[:10] if value else None

"""Offline admin commands: they open the database file directly (safe while the server runs)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import click

from rotor_lite.clock import SystemClock
from rotor_lite.config import load_settings
from rotor_lite.errors import ConfigError, RotorError
from rotor_lite.models import Role
from rotor_lite.services import workspaces as service
from rotor_lite.services.workspaces import CreatedKey
from rotor_lite.store.db import connect, migrate

T = TypeVar("T")


def _run_offline(config_file: str | None, data_dir: str | None, operation: Callable[..., T]) -> T:
    try:
        settings = load_settings(config_file, overrides={("storage", "data_dir"): data_dir})
    except ConfigError as exc:
        raise click.ClickException(exc.message) from exc
    settings.data_path.mkdir(parents=True, exist_ok=True)
    conn = connect(settings.db_path, settings.storage.synchronous)
    try:
        migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = operation(conn, SystemClock().now_ms())
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result
    except RotorError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        conn.close()


def _print_key(created: CreatedKey, as_json: bool, *, with_workspace: bool) -> None:
    if as_json:
        if with_workspace:
            click.echo(json.dumps({"id": created.workspace_id, "name": created.workspace_name, "key": created.key}))
        else:
            click.echo(json.dumps({"id": created.id, "workspace": created.workspace_name, "label": created.label,
                                   "role": created.role, "key": created.key}))
        return
    if with_workspace:
        click.echo(f"Workspace: {created.workspace_name} ({created.workspace_id})")
    click.echo(f"API key ({created.role}, shown once): {created.key}")


_config = click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Path to rotor.toml.")
_data_dir = click.option("--data-dir", help="Data directory (overrides storage.data_dir).")
_json = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
def workspaces() -> None:
    """Manage workspaces (offline: works on the database file directly)."""


@workspaces.command("create")
@click.argument("name")
@_config
@_data_dir
@_json
def create_workspace(*, name: str, config_file: str | None, data_dir: str | None, as_json: bool) -> None:
    """Create workspace NAME and print its first admin API key."""
    created = _run_offline(config_file, data_dir, lambda conn, now: service.create_workspace(conn, name, now))
    _print_key(created, as_json, with_workspace=True)


@click.group()
def keys() -> None:
    """Manage API keys (offline: works on the database file directly)."""


@keys.command("create")
@click.option("--workspace", required=True, help="Workspace name or id.")
@click.option("--label", default="", help="A label to recognise the key by.")
@click.option("--role", type=click.Choice([r.value for r in Role]), default="admin", show_default=True, help="What the key may do.")
@_config
@_data_dir
@_json
def create_key(*, workspace: str, label: str, role: str, config_file: str | None, data_dir: str | None, as_json: bool) -> None:
    """Create an API key for a workspace and print it once."""
    created = _run_offline(
        config_file, data_dir, lambda conn, now: service.create_key(conn, workspace, label, Role(role), now)
    )
    _print_key(created, as_json, with_workspace=False)

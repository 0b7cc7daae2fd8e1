"""Offline admin commands: they open the database file directly (safe while the server runs)."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Callable
from typing import TypeVar

import click

from rotor_lite.cli.copy import copy as copy_to_postgres
from rotor_lite.clock import SystemClock
from rotor_lite.config import Settings, load_settings
from rotor_lite.crypto import Vault, decode_key, load_master_key
from rotor_lite.errors import ConfigError, RotorError
from rotor_lite.files import make_data_dir, open_private
from rotor_lite.models import Role
from rotor_lite.services import workspaces as service
from rotor_lite.services.master_key import rotate_master_key as rotate_all
from rotor_lite.services.keyring import DAY_MS, CreatedKey
from rotor_lite.store import counts as count_store
from rotor_lite.store.backends import open_offline, other_clients
from rotor_lite.store.contract import Conn, is_postgres
from rotor_lite.store.db import backup_to

T = TypeVar("T")


def _run_offline(config_file: str | None, data_dir: str | None, operation: Callable[..., T]) -> T:
    try:
        settings = load_settings(config_file, overrides={("storage", "data_dir"): data_dir})
    except ConfigError as exc:
        raise click.ClickException(exc.message) from exc
    conn = open_offline(settings)
    try:
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


def _print_key(created: CreatedKey, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"id": created.id, "workspace": created.workspace_name, "label": created.label,
                               "role": created.role, "queue": created.queue, "key": created.key}))
        return
    scope = f", queue {created.queue} only" if created.queue else ""
    click.echo(f"API key ({created.role}{scope}, shown once): {created.key}")


_config = click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Path to rotor.toml.")
_data_dir = click.option("--data-dir", help="Data directory (overrides storage.data_dir).")
_json = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def create_workspace_offline(*, name: str, plan: str, config_file: str | None, data_dir: str | None, as_json: bool) -> None:
    """Create workspace NAME on the database file directly and print its first admin API key (never expires)."""
    created = _run_offline(
        config_file, data_dir, lambda conn, now: service.create_workspace_offline(conn, name, now, plan)
    )
    if as_json:
        click.echo(json.dumps({"id": created.workspace.id, "name": created.workspace.name, "key": created.key.key}))
        return
    click.echo(f"Workspace: {created.workspace.name} ({created.workspace.id}, plan {created.workspace.plan})")
    _print_key(created.key, False)


@click.group()
def keys() -> None:
    """Manage API keys (offline: works on the database file directly)."""


@keys.command("create")
@click.option("--workspace", required=True, help="Workspace name or id.")
@click.option("--label", default="", help="A label to recognise the key by.")
@click.option("--role", type=click.Choice([r.value for r in Role]), default="admin", show_default=True, help="What the key may do.")
@click.option("--queue", help="Limit the key to this queue (an rt_q_ key): enqueue and read its jobs and stats, nothing else.")
@click.option("--expires-in-days", type=click.IntRange(min=1), help="Expire the key after N days (default: never).")
@_config
@_data_dir
@_json
def create_key(
    *, workspace: str, label: str, role: str, queue: str | None, expires_in_days: int | None, config_file: str | None,
    data_dir: str | None, as_json: bool,
) -> None:
    """Create an API key for a workspace and print it once (for keys over the API: `rotor api-keys create`)."""
    created = _run_offline(
        config_file, data_dir, lambda conn, now: service.create_key(
            conn, workspace, label, Role(role), now, queue,
            None if expires_in_days is None else now + expires_in_days * DAY_MS,
        ),
    )
    _print_key(created, as_json)


@click.group("admin")
def admin() -> None:
    """Server administration: backups and counter rebuilds (the server may run), master-key rotation (stop it first)."""


admin.add_command(copy_to_postgres)


@admin.command("rotate-master-key")
@click.option("--new-key", required=True, help="The new master key: base64 of 32 bytes (e.g. `openssl rand -base64 32`).")
@_config
@_data_dir
@_json
def rotate_master_key(*, new_key: str, config_file: str | None, data_dir: str | None, as_json: bool) -> None:
    """Re-encrypt every secret at rest under a new master key, in one transaction.

    Needs the current key (security.master_key, ROTOR_SECURITY_MASTER_KEY or <data_dir>/master.key) and
    a stopped server. When the key lives in <data_dir>/master.key, the file is replaced; when it is
    configured, update the configuration to the new key before starting the server again.
    """
    settings = _settings(config_file, data_dir)
    try:
        new = Vault(decode_key(new_key, "--new-key"))
        old_key = load_master_key(settings.security.master_key, settings.data_path)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from exc
    if old_key == new.key_bytes:
        raise click.ClickException("--new-key is the current master key")
    with _server_stopped(settings.data_path):
        staged = None if settings.security.master_key else _stage_key_file(settings.data_path, new_key)
        try:
            def rotate(conn: Conn, now: int) -> dict[str, int]:
                _no_other_node(conn)
                return rotate_all(conn, Vault(old_key), new, now)

            counts = _run_offline(config_file, data_dir, rotate)
        except BaseException:
            if staged is not None:
                staged.unlink(missing_ok=True)
            raise
        if staged is not None:
            os.replace(staged, settings.data_path / "master.key")
    if as_json:
        click.echo(json.dumps({"rotated": counts, "keyFile": staged is not None}))
        return
    click.echo("Master key rotated: " + ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in counts.items()))
    if staged is None:
        click.echo("Now set security.master_key / ROTOR_SECURITY_MASTER_KEY to the new key before starting the server.")


@admin.command("backup")
@click.option("--to", "target", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The file to write; it must not exist yet.")
@_config
@_data_dir
@_json
def backup(*, target: Path, config_file: str | None, data_dir: str | None, as_json: bool) -> None:
    """Copy the database to a new file with SQLite's online backup: safe while the server runs.

    The copy is one consistent snapshot, owner-only (0600). Secrets in it are encrypted under the
    master key, which it does not contain: keep a copy of <data_dir>/master.key (or of your
    configured security.master_key) apart from it.
    """
    settings = _settings(config_file, data_dir)
    if settings.storage.is_postgres:
        raise click.ClickException("admin backup copies the SQLite database: on PostgreSQL (storage.url) use pg_dump")
    if not settings.db_path.is_file():
        raise click.ClickException(f"no database at {settings.db_path}")
    if target.exists() or target.with_name(target.name + ".partial").exists():
        raise click.ClickException(f"{target} exists: choose a new file")
    size = backup_to(settings.db_path, target)
    if as_json:
        click.echo(json.dumps({"database": str(settings.db_path), "backup": str(target), "bytes": size}))
        return
    click.echo(f"Backed up {settings.db_path} to {target} ({size} bytes).")
    click.echo("Keep the master key (security.master_key or <data_dir>/master.key) too: the secrets need it.")


@admin.command("recount")
@_config
@_data_dir
@_json
def recount(*, config_file: str | None, data_dir: str | None, as_json: bool) -> None:
    """Rebuild the per-queue job counters (counts, stats, /metrics) from the jobs table; report any drift fixed.

    One transaction that reads every job: a running server's writes wait for it (about 1.5 s at 10M jobs).
    """
    fixed = _run_offline(config_file, data_dir, lambda conn, now: count_store.recount(conn))
    if as_json:
        click.echo(json.dumps({"fixed": [
            {"queueId": d.queue_id, "workspace": d.workspace_id, "queue": d.queue, "state": d.state, "counted": d.kept,
             "actual": d.actual}
            for d in fixed
        ]}))
        return
    if not fixed:
        click.echo("Counters rebuilt: they matched the jobs table.")
        return
    click.echo(f"Counters rebuilt; {len(fixed)} had drifted:")
    for drift in fixed:
        queue = f"{drift.queue} ({drift.workspace_id})" if drift.queue else f"deleted queue #{drift.queue_id}"
        click.echo(f"  {queue} {drift.state}: counted {drift.kept}, actually {drift.actual}")


def _settings(config_file: str | None, data_dir: str | None) -> Settings:
    try:
        return load_settings(config_file, overrides={("storage", "data_dir"): data_dir})
    except ConfigError as exc:
        raise click.ClickException(exc.message) from exc


@contextmanager
def _server_stopped(data_path: Path) -> Iterator[None]:
    """Hold the data directory's server lock: a running server would keep writing under the old key."""
    make_data_dir(data_path)
    with os.fdopen(open_private(data_path / "server.lock", os.O_WRONLY | os.O_APPEND), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise click.ClickException(f"a rotor-lite server is running on {data_path}: stop it first") from exc
        yield


def _no_other_node(conn: Conn) -> None:
    """On PostgreSQL the data directory's lock speaks for this machine only: a node elsewhere would go on
    writing under the old key, so every other connection to the database must be gone."""
    if is_postgres(conn) and (count := other_clients(conn)):
        raise click.ClickException(f"{count} other connection(s) to the database: stop every rotor-lite node first")


def _stage_key_file(data_path: Path, key: str) -> Path:
    """Write the new key beside master.key (0600); it replaces it once the database is committed."""
    staged = data_path / "master.key.new"
    staged.unlink(missing_ok=True)
    with os.fdopen(open_private(staged, os.O_WRONLY | os.O_EXCL), "w") as handle:
        handle.write(key.strip() + "\n")
    return staged

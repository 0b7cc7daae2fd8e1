"""`rotor-lite migrate`: apply the database schema before (or without) starting a server.

A server migrates at start too; this command lets a deployment do it once, first, and see what changed.
On PostgreSQL the migrations take an advisory lock: several `migrate`s or servers starting at once on
one database apply each migration once, the others wait and find nothing left to do.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

import click

from rotor_lite.config import Settings, load_settings
from rotor_lite.errors import ConfigError
from rotor_lite.store.db import connect, migrate as migrate_sqlite, schema_version


@click.command("migrate")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Path to rotor.toml.")
@click.option("--data-dir", help="Data directory of the SQLite database (overrides storage.data_dir).")
@click.option("--url", help="A PostgreSQL database (overrides storage.url), e.g. postgresql://rotor@db/rotor.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def migrate(*, config_file: str | None, data_dir: str | None, url: str | None, as_json: bool) -> None:
    """Apply the database schema (SQLite data dir or PostgreSQL storage.url) and report what was applied.

    Servers migrate at start too; on PostgreSQL several at once take turns (an advisory lock).
    """
    try:
        settings = load_settings(config_file, overrides={("storage", "data_dir"): data_dir, ("storage", "url"): url})
    except ConfigError as exc:
        raise click.ClickException(exc.message) from exc
    database, applied, version = _migrate_postgres(settings) if settings.storage.is_postgres else _migrate_sqlite(settings)
    if as_json:
        click.echo(json.dumps({"database": database, "applied": applied, "version": version}))
    elif applied:
        click.echo(f"Applied {len(applied)} migration(s) to {database}: {', '.join(map(str, applied))};"
                   f" schema version {version}.")
    else:
        click.echo(f"Nothing to apply: {database} is at schema version {version}.")


def _migrate_sqlite(settings: Settings) -> tuple[str, list[int], int]:
    conn = connect(settings.db_path, settings.storage.synchronous)
    try:
        applied = migrate_sqlite(conn)
        return str(settings.db_path), applied, schema_version(conn)
    finally:
        conn.close()


def _migrate_postgres(settings: Settings) -> tuple[str, list[int], int]:
    import asyncpg  # only where PostgreSQL is used

    from rotor_lite.store.pg import PgConnection, pg_migrations

    shown = _without_password(settings.storage.url)
    try:
        conn = PgConnection.open(settings.storage.url)
    except (OSError, asyncpg.PostgresError) as exc:
        raise click.ClickException(f"cannot connect to {shown}: {exc}") from exc
    try:
        count = conn.migrate()
    finally:
        conn.close()
    numbers = [number for number, _ in pg_migrations()]  # migrate_pg applies those above the database's version
    return shown, numbers[len(numbers) - count:], max(numbers, default=0)


def _without_password(url: str) -> str:
    """The URL to show: its password left out."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc + (f":{parts.port}" if parts.port else "")))

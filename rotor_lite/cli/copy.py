"""`rotor-lite admin copy`: move a single node's SQLite installation into an empty PostgreSQL database."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import click

from rotor_lite.errors import ConfigError

if TYPE_CHECKING:  # asyncpg and the engine are imported when the command runs, not when `admin` loads
    from rotor_lite.store.copy import TableCopied

_SQLITE_SCHEME = "sqlite://"


def source_path(source: str) -> Path:
    """The database file `--from` names: sqlite:///relative/rotor.db, sqlite:////absolute/rotor.db (the
    usual sqlite URL forms), or a plain path to the file or to its data directory."""
    path = Path(source[len(_SQLITE_SCHEME) + 1:] if source.startswith(_SQLITE_SCHEME + "/") else source)
    path = path / "rotor.db" if path.is_dir() else path
    if not path.is_file():
        raise click.ClickException(
            f"no SQLite database at {path.resolve()} (sqlite:///relative/path or sqlite:////absolute/path)"
        )
    return path


def shown_url(url: str) -> str:
    """The URL without its password, for output and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@click.command("copy")
@click.option("--from", "source", required=True, metavar="SQLITE_URL",
              help="The SQLite database: sqlite:///data/rotor.db (relative), sqlite:////var/lib/rotor-lite/rotor.db "
                   "(absolute), or its data directory.")
@click.option("--to", "target", required=True, metavar="POSTGRESQL_URL",
              help="The PostgreSQL database (postgresql://user:password@host/db); it must be empty.")
@click.option("--batch-rows", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Rows read and sent at a time (memory stays bounded by it).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def copy(*, source: str, target: str, batch_rows: int, as_json: bool) -> None:
    """Copy a single-node installation's SQLite database into an empty PostgreSQL database, then verify it.

    Stop the server on the SQLite data directory first (the command locks it while it copies). Every table
    is copied in one PostgreSQL transaction (a failure leaves the target empty), its rows counted on both
    sides, and the rowid sequences moved past the copied rows. Secrets stay encrypted under the source's
    master key: configure the PostgreSQL nodes with the same key.
    """
    from rotor_lite.engine.runtime import claim_data_dir
    from rotor_lite.store.copy import Progress, copy_database
    from rotor_lite.store.db import connect, migrate

    if not target.startswith(("postgresql://", "postgres://")):
        raise click.ClickException("--to must be a postgresql:// URL")
    path = source_path(source)
    try:
        lock = claim_data_dir(path.parent)
    except ConfigError as exc:
        raise click.ClickException(f"a rotor-lite server is running on {path.parent}: stop it first") from exc
    echo = (lambda _line: None) if as_json else click.echo
    echo(f"Copying {path} to {shown_url(target)} (its server must stay stopped: {path.parent} is locked meanwhile)")
    started = time.monotonic()

    def table_done(table: TableCopied) -> None:
        rate = f"  {table.rows / table.seconds:>9,.0f} rows/s" if table.rows >= batch_rows and table.seconds else ""
        echo(f"  {table.name:<20} {table.rows:>11,} rows  {table.seconds:6.1f} s{rate}")

    def progress(step: Progress) -> None:
        if not as_json and step.total > batch_rows and sys.stderr.isatty():
            click.echo(f"\r  {step.table:<20} {step.copied:>11,} / {step.total:,}", nl=step.copied >= step.total, err=True)

    conn = connect(path)
    try:
        migrate(conn)  # the source at this version's schema, as every offline command leaves it
        tables = asyncio.run(copy_database(conn, target, batch_rows=batch_rows, on_table=table_done, on_progress=progress))
    except ConfigError as exc:
        raise click.ClickException(exc.message) from exc
    except (OSError, sqlite3.Error) as exc:
        raise click.ClickException(f"copy failed, the target is unchanged: {exc}") from exc
    except Exception as exc:  # asyncpg's errors: the server refused a statement or the connection
        if type(exc).__module__.startswith("asyncpg"):
            raise click.ClickException(f"copy failed, the target is unchanged: {type(exc).__name__}: {exc}") from exc
        raise
    finally:
        conn.close()
        lock.close()
    _report(path, target, tables, time.monotonic() - started, as_json)


def _report(path: Path, target: str, tables: list[TableCopied], seconds: float, as_json: bool) -> None:
    rows = sum(table.rows for table in tables)
    key_file = path.parent / "master.key"
    key_note = (
        f"copy {key_file} into every PostgreSQL node's data directory, or set security.master_key / "
        "ROTOR_SECURITY_MASTER_KEY to its content"
        if key_file.is_file() else
        "configure every PostgreSQL node with the security.master_key / ROTOR_SECURITY_MASTER_KEY the SQLite server had"
    )
    if as_json:
        click.echo(json.dumps({
            "source": str(path), "target": shown_url(target), "verified": True, "rows": rows,
            "seconds": round(seconds, 3), "rowsPerSecond": round(rows / seconds) if seconds else None,
            "tables": [{"name": t.name, "rows": t.rows, "seconds": round(t.seconds, 3)} for t in tables],
            "masterKey": key_note,
        }))
        return
    click.echo(f"Copied {rows:,} rows in {len(tables)} tables in {seconds:.1f} s ({rows / seconds:,.0f} rows/s): "
               "counts verified, rowid sequences advanced.")
    click.echo(f"Secrets are still encrypted under the SQLite server's master key: {key_note}.")

"""Which store a server opens: SQLite in its data directory, or the PostgreSQL of `[storage] url`."""

from __future__ import annotations

from typing import Any

from rotor_lite.config import Settings
from rotor_lite.store.db import Database, connect, migrate
from rotor_lite.store.guardrails import PolicyReader, open_sqlite_reader


def open_database(settings: Settings) -> Database:
    if settings.storage.is_postgres:
        from rotor_lite.store.pg import PgDatabase  # asyncpg only where PostgreSQL is used

        return PgDatabase(settings.storage.url)
    return Database(settings.db_path, settings.storage.synchronous)


def open_policy_reader(settings: Settings) -> PolicyReader:
    """The guardrails' reader for the event loop's thread, on the server's database."""
    if settings.storage.is_postgres:
        from rotor_lite.store.pg import BlockingPgConnection

        return PolicyReader(BlockingPgConnection(settings.storage.url))
    return PolicyReader(open_sqlite_reader(settings.db_path))


def open_offline(settings: Settings) -> Any:
    """A migrated write connection for offline commands (`rotor-lite admin …` with no server)."""
    if settings.storage.is_postgres:
        from rotor_lite.store.pg import PgConnection

        conn = PgConnection.open(settings.storage.url)
        conn.migrate()
        return conn
    sqlite = connect(settings.db_path, settings.storage.synchronous)
    migrate(sqlite)
    return sqlite


def other_clients(conn: Any) -> int:
    """How many other client connections the PostgreSQL database has (other nodes, other commands)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend'"
    ).fetchone()
    return int(row[0])

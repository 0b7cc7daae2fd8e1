"""The PostgreSQL schema (store/pg_sql) is the twin of the SQLite migrations (store/sql): same tables, same
columns in the same order with the matching types and nullability, same indexes. The store's SQL reads
both, so a SQLite migration without its PostgreSQL twin (or the reverse) fails here.

Needs a PostgreSQL server: `ROTOR_TEST_PG_DSN=postgresql://user@host:port/db` and asyncpg; skipped otherwise.
The schema is loaded into a throwaway PostgreSQL schema, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from rotor_lite.store.db import connect, migrate

# SQLite's implicit rowid, made an explicit column in PostgreSQL because the store's SQL reads it
# (job_attempt: a job's attempts are listed ORDER BY rowid).
ADDED_ROWID = {"job_attempt"}
PG_TYPE = {"INTEGER": "bigint", "TEXT": "text", "BLOB": "bytea", "REAL": "double precision"}

Columns = dict[str, list[tuple[str, str, bool]]]  # table -> [(column, PostgreSQL type, not null)]


def _sqlite_schema(path: Path) -> tuple[Columns, set[str]]:
    conn = connect(path)
    try:
        migrate(conn)
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        columns = {
            table: [(name, PG_TYPE[declared], bool(notnull) or pk > 0)
                    for _, name, declared, notnull, _, pk in conn.execute(f"PRAGMA table_info({table})")]
            for table in tables
        }
        indexes = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
        return columns, indexes
    finally:
        conn.close()


async def _pg_schema(dsn: str) -> tuple[Columns, set[str]]:
    asyncpg: Any = pytest.importorskip("asyncpg")
    script = (resources.files("rotor_lite.store") / "pg_sql" / "0001_schema.sql").read_text()
    schema = f"schema_check_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}; SET search_path TO {schema}")
        await conn.execute(script)
        columns: Columns = {}
        for table, name, data_type, nullable in await conn.fetch(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = $1 ORDER BY table_name, ordinal_position", schema,
        ):
            columns.setdefault(table, []).append((name, data_type, nullable == "NO"))
        # Indexes PostgreSQL makes for a PRIMARY KEY or UNIQUE constraint are SQLite's autoindexes: not compared.
        indexes = {row[0] for row in await conn.fetch(
            "SELECT i.indexname FROM pg_indexes AS i WHERE i.schemaname = $1 AND NOT EXISTS"
            " (SELECT 1 FROM pg_constraint AS c JOIN pg_namespace AS n ON n.oid = c.connamespace"
            "  WHERE n.nspname = $1 AND c.conname = i.indexname)", schema,
        )}
        return columns, indexes
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


@pytest.fixture
def pg_dsn() -> str:
    dsn = os.environ.get("ROTOR_TEST_PG_DSN")
    if not dsn:
        pytest.skip("no PostgreSQL to check against: set ROTOR_TEST_PG_DSN")
    return dsn


async def test_the_postgresql_schema_is_the_twin_of_the_sqlite_migrations(pg_dsn: str, tmp_path: Path) -> None:
    sqlite_columns, sqlite_indexes = _sqlite_schema(tmp_path / "rotor.db")
    pg_columns, pg_indexes = await _pg_schema(pg_dsn)

    assert sorted(pg_columns) == sorted(sqlite_columns)
    for table, expected in sqlite_columns.items():
        added = [("rowid", "bigint", True)] if table in ADDED_ROWID else []
        assert pg_columns[table] == added + expected, table
    assert pg_indexes == sqlite_indexes

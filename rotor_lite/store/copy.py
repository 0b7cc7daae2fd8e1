"""Copy a single node's SQLite database into an empty PostgreSQL database (`rotor-lite admin copy`).

Nothing here knows the tables: they come from the SQLite file's own catalogue, their columns from
both catalogues, so every migration is covered as soon as it has its PostgreSQL twin. Each table
streams through one binary COPY in batches (memory stays bounded at any size), all of them in one
PostgreSQL transaction: a copy that fails or whose counts differ leaves the target empty. Values go
over as they are, encrypted secrets included: the PostgreSQL nodes need the same master key.
"""

from __future__ import annotations

import graphlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import asyncpg

from rotor_lite.errors import ConfigError
from rotor_lite.store.pg import migrate_pg

BATCH_ROWS = 5000

_SQLITE_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
_PG_COLUMNS = (
    "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
    " JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
    " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' ORDER BY c.table_name, c.ordinal_position"
)
_PG_FOREIGN_KEYS = (
    "SELECT child.relname, parent.relname FROM pg_constraint k"
    " JOIN pg_class child ON child.oid = k.conrelid JOIN pg_class parent ON parent.oid = k.confrelid"
    " WHERE k.contype = 'f' AND child.relnamespace = current_schema()::regnamespace"
)
# SQLite stores what it is given whatever a column's declared type; PostgreSQL's binary COPY wants exactly
# bytes for BYTEA and str for TEXT. The cast runs in SQLite's C code and changes nothing already right.
_SQLITE_CAST = {"bytea": "BLOB", "text": "TEXT"}


@dataclass(frozen=True)
class TablePlan:
    """One table to copy: the SQLite SELECT that reads it and the PostgreSQL columns it fills, in order."""

    name: str
    select: str
    columns: tuple[str, ...]
    has_rowid: bool


@dataclass(frozen=True)
class TableCopied:
    name: str
    rows: int
    seconds: float


@dataclass(frozen=True)
class Progress:
    table: str
    copied: int
    total: int


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sqlite_tables(source: sqlite3.Connection) -> list[str]:
    return [row[0] for row in source.execute(_SQLITE_TABLES)]


def sqlite_columns(source: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in source.execute(f"PRAGMA table_info({quote(table)})")]


def plan_table(source: sqlite3.Connection, table: str, target: dict[str, str]) -> TablePlan:
    """How to read `table` for its PostgreSQL twin (`target`: column -> data type). A PostgreSQL `rowid`
    the SQLite table does not declare is SQLite's implicit rowid (job_attempt's attempts keep their order)."""
    present = sqlite_columns(source, table)
    if missing := [column for column in present if column not in target]:
        raise ConfigError(f"column {table}.{missing[0]} has no PostgreSQL twin: this version cannot copy it")
    columns = [column for column in target if column in present or column == "rowid"]
    selected = []
    for column in columns:
        cast = _SQLITE_CAST.get(target[column])
        selected.append(f"CAST({quote(column)} AS {cast})" if cast else quote(column))
    order = " ORDER BY rowid" if "rowid" in columns else ""  # free: it is the table's own order
    return TablePlan(table, f"SELECT {', '.join(selected)} FROM {quote(table)}{order}", tuple(columns), "rowid" in target)


async def target_schema(conn: asyncpg.Connection) -> tuple[dict[str, dict[str, str]], dict[str, set[str]]]:
    """The PostgreSQL tables with their columns' types, and what each table's foreign keys point to."""
    tables: dict[str, dict[str, str]] = {}
    for table, column, data_type in await conn.fetch(_PG_COLUMNS):
        tables.setdefault(table, {})[column] = data_type
    parents: dict[str, set[str]] = {table: set() for table in tables}
    for child, parent in await conn.fetch(_PG_FOREIGN_KEYS):
        if child != parent:
            parents[child].add(parent)
    return tables, parents


def copy_plan(source: sqlite3.Connection, tables: dict[str, dict[str, str]], parents: dict[str, set[str]]) -> list[TablePlan]:
    """Every SQLite table, parents before the tables whose foreign keys point at them."""
    names = sqlite_tables(source)
    if unknown := [name for name in names if name not in tables]:
        raise ConfigError(f"table {unknown[0]} has no PostgreSQL twin: this version cannot copy it")
    order = graphlib.TopologicalSorter({name: parents[name] & set(names) for name in sorted(names)}).static_order()
    return [plan_table(source, name, tables[name]) for name in order]


async def refuse_non_empty(conn: asyncpg.Connection, plans: list[TablePlan]) -> None:
    for plan in plans:
        if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {quote(plan.name)})"):
            raise ConfigError(
                f"the target database is not empty (table {plan.name} has rows): copy into a new, empty database"
            )


async def _batches(
    source: sqlite3.Connection, plan: TablePlan, total: int, batch_rows: int, on_progress: Callable[[Progress], None],
) -> AsyncIterator[tuple[object, ...]]:
    cursor = source.execute(plan.select)
    copied = 0
    try:
        while rows := cursor.fetchmany(batch_rows):
            for row in rows:
                yield row
            copied += len(rows)
            on_progress(Progress(plan.name, copied, total))
    finally:
        cursor.close()


async def copy_table(
    source: sqlite3.Connection, conn: asyncpg.Connection, plan: TablePlan, *, batch_rows: int,
    on_progress: Callable[[Progress], None],
) -> TableCopied:
    """Stream one table through a binary COPY, then check PostgreSQL holds as many rows as SQLite does."""
    started = time.monotonic()
    total = int(source.execute(f"SELECT count(*) FROM {quote(plan.name)}").fetchone()[0])
    if total:
        records = _batches(source, plan, total, batch_rows, on_progress)
        await conn.copy_records_to_table(plan.name, records=records, columns=list(plan.columns))
    copied = int(await conn.fetchval(f"SELECT count(*) FROM {quote(plan.name)}"))
    if copied != total:
        raise ConfigError(f"table {plan.name}: {total} rows in SQLite but {copied} in PostgreSQL; nothing was copied")
    return TableCopied(plan.name, total, time.monotonic() - started)


async def advance_rowids(conn: asyncpg.Connection, plans: list[TablePlan]) -> None:
    """New rows must get rowids past the copied ones: move each identity sequence after the table's max."""
    for plan in plans:
        if plan.has_rowid:
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence($1, 'rowid'), coalesce(max(rowid), 0) + 1, false)"
                f" FROM {quote(plan.name)}",
                plan.name,
            )


async def copy_database(
    source: sqlite3.Connection, dsn: str, *, batch_rows: int = BATCH_ROWS,
    on_table: Callable[[TableCopied], None] = lambda _: None, on_progress: Callable[[Progress], None] = lambda _: None,
) -> list[TableCopied]:
    """Migrate the PostgreSQL database, refuse it unless it is empty, copy every table of `source` into it
    in one transaction (read in one SQLite transaction too), verify the counts and advance the rowids."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate_pg(conn)
        tables, parents = await target_schema(conn)
        source.execute("BEGIN")  # one snapshot of the source from the first table to the last
        try:
            plans = copy_plan(source, tables, parents)
            await refuse_non_empty(conn, plans)
            copied = []
            async with conn.transaction():
                for plan in plans:
                    copied.append(await copy_table(source, conn, plan, batch_rows=batch_rows, on_progress=on_progress))
                    on_table(copied[-1])
                await advance_rowids(conn, plans)
            return copied
        finally:
            source.execute("ROLLBACK")
    finally:
        await conn.close()

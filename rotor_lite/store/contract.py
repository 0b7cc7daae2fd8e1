"""The store contract: what services and engine may assume of a database, SQLite or PostgreSQL.

A write is a function of a `Conn` run inside the node's group commit (`Store.write`); a read goes
through `Store.fetchall` / `Store.fetchone`. Both backends take the same SQL text: written with `?`
parameters in the SQLite dialect, which the PostgreSQL store translates once per statement
(`store/pg_dialect.py`). Where the two dialects cannot share a statement, the store module asks
`is_postgres(conn)` and keeps both texts side by side.

Errors keep the sqlite3 classes as the contract's names on both backends (the PostgreSQL store
raises them too): an `IntegrityError` is a constraint the operation broke (the operation fails
alone); any other `StoreError` fails the whole group and reports storage unavailable.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

IntegrityError = sqlite3.IntegrityError
StoreError = sqlite3.Error
SQLITE_LIMIT_VARIABLE_NUMBER = sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER  # `Conn.getlimit`: parameters per statement


class Cursor(Protocol):
    """What a statement gives back: its rows and how many rows it changed."""

    @property
    def rowcount(self) -> int: ...

    @property
    def lastrowid(self) -> int | None: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """The connection a write operation runs on, inside the group's transaction."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...

    @property
    def in_transaction(self) -> bool: ...

    @property
    def total_changes(self) -> int: ...

    def getlimit(self, category: int, /) -> int: ...


class Store(Protocol):
    """A database as the server uses it: group-committed writes, reads, and notices between nodes."""

    dialect: str

    async def write(self, op: Callable[[Any], T]) -> T: ...

    async def fetchall(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[Any]: ...

    async def fetchone(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any: ...

    def listen(self, channel: str, callback: Callable[[str], None]) -> None: ...


def is_postgres(conn: object) -> bool:
    """Whether `conn` (a write connection or a `Store`) speaks PostgreSQL."""
    return getattr(conn, "dialect", "sqlite") == "postgres"


def notify(conn: object, channel: str, payload: str = "") -> None:
    """Tell the other nodes, once this write commits, that `channel` changed (nothing on SQLite:
    one node is alone with its database)."""
    if is_postgres(conn):
        conn.execute("SELECT pg_notify(?, ?)", (channel, payload))  # type: ignore[attr-defined]



def upsert(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """`INSERT … ON CONFLICT (key) DO UPDATE` of every other column: a row inserted or replaced, in
    the syntax both backends share (SQLite's `INSERT OR REPLACE` is its own)."""
    updates = ", ".join(f"{column} = excluded.{column}" for column in columns if column not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


def lock_across_nodes(conn: object, name: str) -> None:
    """Hold `name` until this write commits: nodes doing the same work (a first start's bootstrap) take
    turns. Nothing on SQLite, whose writer takes every write in turn anyway."""
    if is_postgres(conn):
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (name,))  # type: ignore[attr-defined]

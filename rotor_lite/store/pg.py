"""The PostgreSQL store: the same contract as the SQLite one, for several nodes on one database.

Writes keep the SQLite store's shape: one writer thread per node runs the operations that have
queued up in one transaction (group commit), each in its own savepoint. The thread drives its
asyncpg connection on an event loop of its own, one statement at a time, so an operation stays a
plain function of a connection on both backends. Reads go through an asyncpg pool on the server's
loop. A group that deadlocks or fails to serialize against another node is rolled back and run
again (`Database._commit_group`).

Between nodes: `store.contract.notify` inside a write becomes `pg_notify`, delivered when it
commits; `PgDatabase.listen` hands other nodes' notices to callbacks on the server's loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from rotor_lite.store.db import Database
from rotor_lite.store.pg_dialect import Translated, translate

log = logging.getLogger("rotor_lite.store")

CHANGES_CHANNEL = "rotor_changes"
_MIGRATION_LOCK = zlib.crc32(b"rotor-lite:migrate")  # one node migrates while the others wait
_RETRYABLE = {"40001", "40P01"}  # serialization failure, deadlock detected
_STATUS_COUNT = re.compile(r"(\d+)$")
_RETURNS_ROWS = re.compile(r"^\s*(SELECT|WITH|VALUES)\b|\bRETURNING\b", re.IGNORECASE)


class PgCursor:
    """A statement's rows and change count, shaped like the sqlite3 cursor the store reads."""

    __slots__ = ("_rows", "rowcount", "lastrowid")

    def __init__(self, rows: list[Any], rowcount: int, lastrowid: int | None = None) -> None:
        self._rows = rows
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class PgConnection:
    """A synchronous connection over asyncpg, for write operations (and offline commands)."""

    dialect = "postgres"

    def __init__(self, loop: asyncio.AbstractEventLoop, conn: asyncpg.Connection, url: str) -> None:
        self._loop = loop
        self._conn = conn
        self._url = url
        self.server_pid = int(conn.get_server_pid())
        self.total_changes = 0
        self._changed: set[str] = set()  # tables this transaction wrote: told to the other nodes at COMMIT
        self._open_transaction = False

    @classmethod
    def open(cls, url: str) -> PgConnection:
        """Connect from a thread with no running event loop (the writer thread, a CLI command)."""
        loop = asyncio.new_event_loop()
        return cls(loop, loop.run_until_complete(asyncpg.connect(url)), url)

    def getlimit(self, category: int) -> int:
        return 32767  # the most parameters asyncpg binds to one statement

    def migrate(self) -> int:
        return int(self._call(migrate_pg(self._conn)))

    @property
    def in_transaction(self) -> bool:
        return not self._conn.is_closed() and bool(self._conn.is_in_transaction())

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> PgCursor:
        statement = translate(sql)
        if self._conn.is_closed() and (statement.sql == "BEGIN" or not self._open_transaction):
            self._reconnect()  # never inside a transaction: its earlier statements are gone with the connection
        if statement.sql == "BEGIN":
            self._open_transaction = True
        elif statement.sql in ("COMMIT", "ROLLBACK"):
            self._open_transaction = False
        if statement.sql == "COMMIT":
            self._tell_changes()
        elif statement.sql == "ROLLBACK":
            self._changed.clear()
        try:
            cursor: PgCursor = self._call(self._run(statement, pg_args(statement, parameters)))
        except sqlite3.OperationalError:
            log.error("statement failed", extra={"sql": statement.sql[:500]})
            raise
        if statement.writes_to is not None:
            self._changed.add(statement.writes_to)
            if not self.in_transaction:
                self._tell_changes()
        return cursor

    def _reconnect(self) -> None:
        """The database went away (a restart, a failover): the next transaction (or statement outside one)
        opens a new connection, or fails as unavailable in turn."""
        try:
            self._conn = self._loop.run_until_complete(asyncpg.connect(self._url))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise sqlite3.OperationalError(f"cannot reconnect to PostgreSQL: {exc}") from exc
        self.server_pid = int(self._conn.get_server_pid())
        self._changed.clear()
        log.warning("reconnected to PostgreSQL")

    def _tell_changes(self) -> None:
        """One notice per transaction naming the tables it wrote, delivered when it commits: other nodes
        reload what they keep in memory of them and wake the loops that work on them (`services/cluster.py`)."""
        if self._changed:
            tables = ",".join(sorted(self._changed))
            self._changed.clear()
            self._call(self._conn.execute("SELECT pg_notify($1, $2)", CHANGES_CHANNEL, tables))

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> PgCursor:
        statement = translate(sql)
        rows = [pg_args(statement, row) for row in parameters]
        if rows:
            self._call(self._conn.executemany(statement.sql, rows))
        self.total_changes += len(rows)
        return PgCursor([], len(rows))

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._conn.close())
        finally:
            self._loop.close()

    def _call(self, coro: Any) -> Any:
        try:
            return self._loop.run_until_complete(coro)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise store_error(exc) from exc

    async def _run(self, statement: Translated, args: list[Any]) -> PgCursor:
        if _RETURNS_ROWS.search(statement.sql):
            rows = await self._conn.fetch(statement.sql, *args)
            lastrowid = rows[0][0] if len(rows) == 1 and rows[0] and isinstance(rows[0][0], int) else None
            self.total_changes += len(rows)
            return PgCursor(rows, len(rows), lastrowid)
        status = await self._conn.execute(statement.sql, *args)
        found = _STATUS_COUNT.search(status)
        count = int(found.group(1)) if found else -1
        self.total_changes += max(count, 0)
        return PgCursor([], count)


class BlockingPgConnection:
    """Synchronous reads from the event loop's own thread, which cannot drive a second loop: each
    statement runs on a thread of its own and is waited for (the guardrails' policy reads)."""

    dialect = "postgres"

    def __init__(self, url: str) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="rotor-pg-reader")
        self._conn = self._thread.submit(PgConnection.open, url).result()

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> PgCursor:
        return self._thread.submit(self._conn.execute, sql, parameters).result()

    def close(self) -> None:
        self._thread.submit(self._conn.close).result()
        self._thread.shutdown()


def pg_args(statement: Translated, parameters: Sequence[Any]) -> list[Any]:
    """The parameters as asyncpg takes them: a list passed as JSON text becomes a Python list."""
    args = list(parameters)
    for index in statement.list_params:
        value = args[index]
        if isinstance(value, (str, bytes)):
            args[index] = msgspec.json.decode(value)
    return args


def store_error(exc: asyncpg.PostgresError | asyncpg.InterfaceError | OSError) -> sqlite3.Error:
    """A PostgreSQL error as the store contract names it (`store.contract`)."""
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return sqlite3.IntegrityError(str(exc))
    error = sqlite3.OperationalError(f"{type(exc).__name__}: {exc}")
    error.retryable = getattr(exc, "sqlstate", "") in _RETRYABLE  # type: ignore[attr-defined]
    return error


class PgDatabase(Database):
    """Several nodes' shared database: this node's writer thread, read pool and notice listener."""

    dialect = "postgres"

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        super().__init__(Path("."))
        self.url = url
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._callbacks: dict[str, list[Callable[[str], None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    async def __aenter__(self) -> PgDatabase:
        self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self._pool_size)
        try:
            async with self._pool.acquire() as conn:
                await migrate_pg(conn)
            self._write_conn = await asyncio.to_thread(PgConnection.open, self.url)
            self._thread = threading.Thread(target=self._run_writer, name="rotor-writer", daemon=True)
            self._thread.start()
            self._listener = await self._connect_listener()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await self._stop_writer()
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def fetchall(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        statement = translate(sql)
        try:
            return list(await self.pool.fetch(statement.sql, *pg_args(statement, params)))
        except asyncpg.PostgresError as exc:
            raise store_error(exc) from exc

    async def fetchone(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        statement = translate(sql)
        try:
            return await self.pool.fetchrow(statement.sql, *pg_args(statement, params))
        except asyncpg.PostgresError as exc:
            raise store_error(exc) from exc

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "database is not open"
        return self._pool

    @property
    def reader(self) -> Any:
        raise NotImplementedError("the PostgreSQL store reads through fetchall/fetchone")

    def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """Call `callback(payload)` on this loop whenever another node notifies `channel`; after the
        listening connection was lost and made again, `callback("*")`: anything may have changed."""
        assert self._listener is not None, "database is not open"
        callbacks = self._callbacks.setdefault(channel, [])
        callbacks.append(callback)
        if len(callbacks) == 1:
            self._spawn(self._listener.add_listener(channel, self._heard))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_listener(self) -> asyncpg.Connection:
        listener = await asyncpg.connect(self.url)
        listener.add_termination_listener(lambda _conn: None if self._closing else self._spawn(self._listen_again()))
        return listener

    async def _listen_again(self) -> None:
        """Reconnect the listening connection (the database restarted), then tell every listener that
        it may have missed notices."""
        delay = 0.2
        while not self._closing:
            try:
                listener = await self._connect_listener()
                for channel in self._callbacks:
                    await listener.add_listener(channel, self._heard)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("cannot listen to the other nodes yet", extra={"error": str(exc), "retry_in_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._listener = listener
            log.warning("listening to the other nodes again")
            for channel in self._callbacks:
                self._dispatch(channel, "*")
            return

    def _heard(self, _conn: Any, pid: int, channel: str, payload: object) -> None:
        writer = self._write_conn
        if writer is not None and pid == writer.server_pid:
            return  # this node's own notice: it acted already when it wrote
        self._dispatch(channel, str(payload))

    def _dispatch(self, channel: str, payload: str) -> None:
        for callback in self._callbacks.get(channel, ()):
            try:
                callback(payload)
            except Exception:  # one listener's bug must not silence the others
                log.exception("notice handler failed", extra={"channel": channel})


async def migrate_pg(conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy) -> int:
    """Apply the PostgreSQL migrations not yet applied; nodes starting together take turns.
    Returns how many were applied."""
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS rotor_schema (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM rotor_schema")
        applied = 0
        for number, script in pg_migrations():
            if number <= current:
                continue
            async with conn.transaction():
                await conn.execute(script)
                await conn.execute("INSERT INTO rotor_schema (version) VALUES ($1)", number)
            applied += 1
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


def pg_migrations() -> list[tuple[int, str]]:
    folder = resources.files("rotor_lite.store") / "pg_sql"
    return sorted(
        (int(entry.name.split("_", 1)[0]), entry.read_text())
        for entry in folder.iterdir() if entry.name.endswith(".sql")
    )
